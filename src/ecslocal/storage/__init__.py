"""Storage: the one database object (db.py) and the components\x27 schemas."""
