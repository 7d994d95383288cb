"""ECR's state in state.db: repositories, images (manifest bytes), tags, and which blobs each
repository holds. One store for the ECR API and the /v2 registry, so a push through either is
seen by both (notes §1.9: manifest PUT = PutImage, blob upload = the layer operations).

Tag rules (botocore ImageTagMutability; aws-semantics.md §3.2): on MUTABLE a tag pushed with a
new manifest moves, and the image it left stays, untagged and pullable by digest; on IMMUTABLE
it is refused with ImageTagAlreadyExistsException; the ``*_WITH_EXCLUSION`` modes invert that
for the tags an exclusion filter (``WILDCARD``, ``*`` = any run of characters) matches.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ecslocal.ecr import manifest as mf
from ecslocal.ecr.names import repository_arn, repository_uri
from ecslocal.errors import AwsError
from ecslocal.registry.blobs import upload_owner_key
from ecslocal.storage.db import Database, Schema

if TYPE_CHECKING:
    from ecslocal.registry.blobs import BlobStore

#: A blob linked to a repository (uploaded, mounted) but in no image yet stays live this long,
#: so a push between its blob uploads and its manifest PUT is never collected under it.
LINK_GRACE_SECONDS = 24 * 3600.0

SCHEMA = Schema(
    "ecr",
    [
        """
CREATE TABLE IF NOT EXISTS ecr_repositories (
    account TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL,
    created_at REAL NOT NULL, mutability TEXT NOT NULL, exclusion_filters TEXT NOT NULL,
    scan_on_push INTEGER NOT NULL, encryption_type TEXT NOT NULL, kms_key TEXT,
    tags TEXT NOT NULL, PRIMARY KEY (account, region, name));
CREATE TABLE IF NOT EXISTS ecr_images (
    account TEXT NOT NULL, region TEXT NOT NULL, repository TEXT NOT NULL,
    digest TEXT NOT NULL, media_type TEXT NOT NULL, artifact_media_type TEXT,
    manifest BLOB NOT NULL, size INTEGER NOT NULL, pushed_at REAL NOT NULL, last_pull REAL,
    subject TEXT, PRIMARY KEY (account, region, repository, digest));
CREATE INDEX IF NOT EXISTS ecr_images_subject ON ecr_images (account, region, repository, subject);
CREATE TABLE IF NOT EXISTS ecr_tags (
    account TEXT NOT NULL, region TEXT NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL,
    digest TEXT NOT NULL, PRIMARY KEY (account, region, repository, tag));
CREATE TABLE IF NOT EXISTS ecr_image_refs (
    account TEXT NOT NULL, region TEXT NOT NULL, repository TEXT NOT NULL,
    image TEXT NOT NULL, ref TEXT NOT NULL, kind TEXT NOT NULL, media_type TEXT,
    size INTEGER NOT NULL, PRIMARY KEY (account, region, repository, image, ref, kind));
CREATE INDEX IF NOT EXISTS ecr_image_refs_ref ON ecr_image_refs (account, region, repository, ref);
CREATE TABLE IF NOT EXISTS ecr_repo_blobs (
    account TEXT NOT NULL, region TEXT NOT NULL, repository TEXT NOT NULL, blob TEXT NOT NULL,
    linked_at REAL NOT NULL, PRIMARY KEY (account, region, repository, blob))
""",
    ],
)

MUTABILITIES = ("MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION")


@dataclass(frozen=True)
class Repository:
    account: str
    region: str
    name: str
    arn: str
    uri: str
    created_at: float
    image_tag_mutability: str
    #: ``(filterType, filter)`` pairs (botocore ImageTagMutabilityExclusionFilter).
    exclusion_filters: tuple[tuple[str, str], ...]
    scan_on_push: bool
    encryption_type: str
    kms_key: str | None
    #: ``(Key, Value)`` resource tags, in the order they were set.
    tags: tuple[tuple[str, str], ...]

    def tag_is_immutable(self, tag: str) -> bool:
        excluded = any(_wildcard(f).fullmatch(tag) for _, f in self.exclusion_filters)
        mode = self.image_tag_mutability
        if mode == "IMMUTABLE_WITH_EXCLUSION":
            return not excluded
        if mode == "MUTABLE_WITH_EXCLUSION":
            return excluded
        return mode == "IMMUTABLE"


@dataclass(frozen=True)
class Image:
    repository_name: str
    digest: str
    media_type: str
    artifact_media_type: str | None
    manifest: bytes
    #: ECR's imageSizeInBytes (see ecr.manifest.ParsedManifest.image_size).
    size: int
    pushed_at: float
    last_pull: float | None
    #: Lexical order.
    tags: tuple[str, ...]
    subject: str | None


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def repository_not_found(name: str, account: str) -> AwsError:
    """ECR's live message (notes §1.7, many captures)."""
    return AwsError(
        "RepositoryNotFoundException",
        f"The repository with name '{name}' does not exist in the registry with id '{account}'",
    )


def tag_already_exists(tag: str, repository: str) -> AwsError:
    """The message docker prints for ECR's refusal (notes §1.7; aws-semantics.md §3.2)."""
    return AwsError(
        "ImageTagAlreadyExistsException",
        f"The image tag '{tag}' already exists in the '{repository}' repository and cannot be"
        " overwritten because the repository is immutable.",
    )


def _not_there(what: str, digests: list[str], repo: Repository) -> str:
    """ECR's wording for blobs or manifests a pushed manifest names but the repository lacks
    ("Images with digests [...] required for pushing image into repository [...] do not
    exist", as a build log quotes the registry's answer; the Layers form by analogy)."""
    return (
        f"{what} with digests '[{', '.join(digests)}]' required for pushing image into"
        f" repository with name '{repo.name}' in registry with id '{repo.account}' do not exist"
    )


class ImageStore:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        *,
        registry: str = "localhost",
        now: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.blobs = blobs
        #: ``<registry-host>:<port>`` that repositoryUri names; the daemon sets it once bound.
        self.registry = registry
        self.now = now
        db.register(SCHEMA)

    # -- repositories -----------------------------------------------------------------------
    def _repository(self, row: Any) -> Repository:
        account, region, name = row[0], row[1], row[2]
        return Repository(
            account=account,
            region=region,
            name=name,
            arn=repository_arn(region, account, name),
            uri=repository_uri(self.registry, name),
            created_at=row[3],
            image_tag_mutability=row[4],
            exclusion_filters=tuple((f[0], f[1]) for f in json.loads(row[5])),
            scan_on_push=bool(row[6]),
            encryption_type=row[7],
            kms_key=row[8],
            tags=tuple((t[0], t[1]) for t in json.loads(row[9])),
        )

    _REPO_COLUMNS = (
        "account, region, name, created_at, mutability, exclusion_filters, scan_on_push,"
        " encryption_type, kms_key, tags"
    )

    def repository(self, account: str, region: str, name: str) -> Repository | None:
        row = self.db.execute(
            f"SELECT {self._REPO_COLUMNS} FROM ecr_repositories"
            " WHERE account = ? AND region = ? AND name = ?",
            (account, region, name),
        ).fetchone()
        return self._repository(row) if row else None

    def repositories(self, account: str, region: str) -> list[Repository]:
        rows = self.db.execute(
            f"SELECT {self._REPO_COLUMNS} FROM ecr_repositories"
            " WHERE account = ? AND region = ? ORDER BY name",
            (account, region),
        ).fetchall()
        return [self._repository(row) for row in rows]

    def create_repository(
        self,
        account: str,
        region: str,
        name: str,
        *,
        mutability: str = "MUTABLE",
        exclusion_filters: tuple[tuple[str, str], ...] = (),
        scan_on_push: bool = False,
        encryption_type: str = "AES256",
        kms_key: str | None = None,
        tags: tuple[tuple[str, str], ...] = (),
    ) -> Repository:
        with self.db.transaction():
            if self.repository(account, region, name) is not None:
                raise AwsError(
                    "RepositoryAlreadyExistsException",
                    f"The repository with name '{name}' already exists in the registry with"
                    f" id '{account}'",
                )
            self.db.execute(
                f"INSERT INTO ecr_repositories ({self._REPO_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account,
                    region,
                    name,
                    self.now(),
                    mutability,
                    json.dumps(exclusion_filters),
                    int(scan_on_push),
                    encryption_type,
                    kms_key,
                    json.dumps(tags),
                ),
            )
        repo = self.repository(account, region, name)
        assert repo is not None
        return repo

    def _key(self, repo: Repository) -> tuple[str, str, str]:
        return (repo.account, repo.region, repo.name)

    _WHERE = "account = ? AND region = ? AND repository = ?"

    def delete_repository(self, repo: Repository, *, force: bool) -> None:
        key = self._key(repo)
        with self.db.transaction():
            if (
                not force
                and self.db.execute(
                    f"SELECT 1 FROM ecr_images WHERE {self._WHERE} LIMIT 1", key
                ).fetchone()
            ):
                raise AwsError(
                    "RepositoryNotEmptyException",
                    f"The repository with name '{repo.name}' in registry with id"
                    f" '{repo.account}' cannot be deleted because it still contains images",
                )
            for table in ("ecr_images", "ecr_tags", "ecr_image_refs", "ecr_repo_blobs"):
                self.db.execute(f"DELETE FROM {table} WHERE {self._WHERE}", key)
            self.db.execute(
                "DELETE FROM ecr_repositories WHERE account = ? AND region = ? AND name = ?", key
            )
        # Its upload sessions go too (ECR: an upload belongs to its repository).
        self.blobs.abort_owned(upload_owner_key(*key))

    def set_mutability(
        self, repo: Repository, mutability: str, filters: tuple[tuple[str, str], ...]
    ) -> Repository:
        self.db.execute(
            "UPDATE ecr_repositories SET mutability = ?, exclusion_filters = ?"
            " WHERE account = ? AND region = ? AND name = ?",
            (mutability, json.dumps(filters), *self._key(repo)),
        )
        updated = self.repository(*self._key(repo))
        assert updated is not None
        return updated

    def set_tags(self, repo: Repository, tags: tuple[tuple[str, str], ...]) -> None:
        self.db.execute(
            "UPDATE ecr_repositories SET tags = ? WHERE account = ? AND region = ? AND name = ?",
            (json.dumps(tags), *self._key(repo)),
        )

    # -- images -----------------------------------------------------------------------------
    _IMAGE_COLUMNS = (
        "digest, media_type, artifact_media_type, manifest, size, pushed_at, last_pull, subject"
    )

    def _image(self, repo: Repository, row: Any) -> Image:
        tags = self.db.execute(
            f"SELECT tag FROM ecr_tags WHERE {self._WHERE} AND digest = ? ORDER BY tag",
            (*self._key(repo), row[0]),
        ).fetchall()
        return Image(
            repository_name=repo.name,
            digest=row[0],
            media_type=row[1],
            artifact_media_type=row[2],
            manifest=bytes(row[3]),
            size=int(row[4]),
            pushed_at=float(row[5]),
            last_pull=row[6],
            tags=tuple(t[0] for t in tags),
            subject=row[7],
        )

    def image(
        self, repo: Repository, *, digest: str | None = None, tag: str | None = None
    ) -> Image | None:
        """The image with ``digest`` and/or ``tag`` (both given: the tag must point at it)."""
        key = self._key(repo)
        if tag is not None:
            row = self.db.execute(
                f"SELECT digest FROM ecr_tags WHERE {self._WHERE} AND tag = ?", (*key, tag)
            ).fetchone()
            if row is None or (digest is not None and row[0] != digest):
                return None
            digest = row[0]
        if digest is None:
            return None
        row = self.db.execute(
            f"SELECT {self._IMAGE_COLUMNS} FROM ecr_images WHERE {self._WHERE} AND digest = ?",
            (*key, digest),
        ).fetchone()
        return self._image(repo, row) if row else None

    def images(self, repo: Repository) -> list[Image]:
        """Every image, oldest push first."""
        rows = self.db.execute(
            f"SELECT {self._IMAGE_COLUMNS} FROM ecr_images WHERE {self._WHERE}"
            " ORDER BY pushed_at, digest",
            self._key(repo),
        ).fetchall()
        return [self._image(repo, row) for row in rows]

    def tags(self, repo: Repository) -> list[str]:
        rows = self.db.execute(
            f"SELECT tag FROM ecr_tags WHERE {self._WHERE} ORDER BY tag", self._key(repo)
        ).fetchall()
        return [row[0] for row in rows]

    def _missing_blobs(self, repo: Repository, parsed: mf.ParsedManifest) -> list[str]:
        return [d.digest for d in parsed.blobs if not self.repo_has_blob(repo, d.digest)]

    def put_image(
        self,
        repo: Repository,
        manifest: bytes,
        media_type: str | None,
        tag: str | None,
        digest: str | None = None,
    ) -> Image:
        """Store a pushed manifest (PutImage and the registry's manifest PUT). Pushing what is
        already there is not an error here (a registry re-push succeeds); PutImage's
        ImageAlreadyExistsException is the API's own check."""
        parsed = mf.parse(manifest, media_type)
        if digest is not None and digest != parsed.digest:
            raise AwsError(
                "ImageDigestDoesNotMatchException",
                f"Invalid parameter at 'imageDigest': the digest '{digest}' does not match the"
                f" digest '{parsed.digest}' that Amazon ECR calculated for the image",
            )
        missing = self._missing_blobs(repo, parsed)
        if missing:
            raise AwsError("LayersNotFoundException", _not_there("Layers", missing, repo))
        key = self._key(repo)
        size = parsed.image_size
        if parsed.is_index:
            children = {c.digest: self.image(repo, digest=c.digest) for c in parsed.manifests}
            absent = [d for d, found in children.items() if found is None]
            if absent:
                raise AwsError(
                    "ReferencedImagesNotFoundException", _not_there("Images", absent, repo)
                )
            size = max((c.size for c in children.values() if c is not None), default=0)
        with self.db.transaction():
            if tag is not None:
                row = self.db.execute(
                    f"SELECT digest FROM ecr_tags WHERE {self._WHERE} AND tag = ?", (*key, tag)
                ).fetchone()
                if row is not None and row[0] != parsed.digest and repo.tag_is_immutable(tag):
                    raise tag_already_exists(tag, repo.name)
            self.db.execute(
                f"INSERT INTO ecr_images (account, region, repository, {self._IMAGE_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)"
                " ON CONFLICT (account, region, repository, digest) DO NOTHING",
                (
                    *key,
                    parsed.digest,
                    parsed.media_type,
                    parsed.artifact_media_type,
                    manifest,
                    size,
                    self.now(),
                    parsed.subject,
                ),
            )
            refs = [(d.digest, "blob", d.media_type, d.size) for d in parsed.blobs]
            refs += [(d.digest, "manifest", d.media_type, d.size) for d in parsed.manifests]
            self.db.executemany(
                "INSERT OR IGNORE INTO ecr_image_refs (account, region, repository, image, ref,"
                " kind, media_type, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*key, parsed.digest, *ref) for ref in refs],
            )
            if tag is not None:
                # A moved tag leaves its old image in place, untagged.
                self.db.execute(
                    "INSERT INTO ecr_tags (account, region, repository, tag, digest)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, region, repository, tag)"
                    " DO UPDATE SET digest = excluded.digest",
                    (*key, tag, parsed.digest),
                )
        image = self.image(repo, digest=parsed.digest)
        assert image is not None
        return image

    def record_pull(self, repo: Repository, digest: str) -> None:
        self.db.execute(
            f"UPDATE ecr_images SET last_pull = ? WHERE {self._WHERE} AND digest = ?",
            (self.now(), *self._key(repo), digest),
        )

    def parents(self, repo: Repository, digest: str) -> list[str]:
        """The digests of the indexes in ``repo`` that list ``digest``."""
        rows = self.db.execute(
            f"SELECT image FROM ecr_image_refs WHERE {self._WHERE} AND ref = ?"
            " AND kind = 'manifest' ORDER BY image",
            (*self._key(repo), digest),
        ).fetchall()
        return [row[0] for row in rows]

    def delete_image(self, repo: Repository, digest: str) -> None:
        key = self._key(repo)
        with self.db.transaction():
            for table, column in (
                ("ecr_tags", "digest"),
                ("ecr_image_refs", "image"),
                ("ecr_images", "digest"),
            ):
                self.db.execute(
                    f"DELETE FROM {table} WHERE {self._WHERE} AND {column} = ?", (*key, digest)
                )

    def untag(self, repo: Repository, tag: str) -> str | None:
        """Remove ``tag``; the image it named goes too when that was its last tag
        (BatchDeleteImage: "When you remove the last tag from an image, the image is deleted").
        Returns the digest the tag named, or None if there was no such tag."""
        key = self._key(repo)
        row = self.db.execute(
            f"SELECT digest FROM ecr_tags WHERE {self._WHERE} AND tag = ?", (*key, tag)
        ).fetchone()
        if row is None:
            return None
        digest = str(row[0])
        self.db.execute(f"DELETE FROM ecr_tags WHERE {self._WHERE} AND tag = ?", (*key, tag))
        left = self.db.execute(
            f"SELECT 1 FROM ecr_tags WHERE {self._WHERE} AND digest = ? LIMIT 1", (*key, digest)
        ).fetchone()
        if left is None:
            self.delete_image(repo, digest)
        return digest

    def referrers(self, repo: Repository, digest: str) -> list[Image]:
        rows = self.db.execute(
            f"SELECT {self._IMAGE_COLUMNS} FROM ecr_images WHERE {self._WHERE} AND subject = ?"
            " ORDER BY digest",
            (*self._key(repo), digest),
        ).fetchall()
        return [self._image(repo, row) for row in rows]

    # -- blobs ------------------------------------------------------------------------------
    def link_blob(self, repo: Repository, digest: str) -> None:
        self.db.execute(
            "INSERT INTO ecr_repo_blobs (account, region, repository, blob, linked_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, region, repository, blob)"
            " DO UPDATE SET linked_at = excluded.linked_at",
            (*self._key(repo), digest, self.now()),
        )

    def repo_has_blob(self, repo: Repository, digest: str) -> bool:
        """The blob is stored and belongs to ``repo`` (uploaded or mounted into it, or in one
        of its images)."""
        if self.blobs.size(digest) is None:
            return False
        key = self._key(repo)
        return bool(
            self.db.execute(
                f"SELECT 1 FROM ecr_repo_blobs WHERE {self._WHERE} AND blob = ?", (*key, digest)
            ).fetchone()
            or self.db.execute(
                f"SELECT 1 FROM ecr_image_refs WHERE {self._WHERE} AND ref = ? AND kind = 'blob'",
                (*key, digest),
            ).fetchone()
        )

    def blob_in_image(self, repo: Repository, digest: str) -> tuple[str | None, int] | None:
        """``(mediaType, size)`` as an image of ``repo`` declares the blob, or None when no
        image references it (GetDownloadUrlForLayer: "only … layers that are referenced in an
        image")."""
        row = self.db.execute(
            f"SELECT media_type, size FROM ecr_image_refs WHERE {self._WHERE} AND ref = ?"
            " AND kind = 'blob' LIMIT 1",
            (*self._key(repo), digest),
        ).fetchone()
        return (row[0], int(row[1])) if row else None

    def live_blobs(self) -> set[str]:
        """Blobs an image references, and blobs linked in the last LINK_GRACE_SECONDS."""
        live = {
            row[0]
            for row in self.db.execute(
                "SELECT DISTINCT ref FROM ecr_image_refs WHERE kind = 'blob'"
            ).fetchall()
        }
        live.update(
            row[0]
            for row in self.db.execute(
                "SELECT DISTINCT blob FROM ecr_repo_blobs WHERE linked_at > ?",
                (self.now() - LINK_GRACE_SECONDS,),
            ).fetchall()
        )
        return live
