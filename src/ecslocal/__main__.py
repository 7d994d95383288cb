from ecslocal.cli import main

main()
