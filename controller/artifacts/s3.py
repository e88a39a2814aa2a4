"""The S3-compatible artifact store: AWS S3, GCS through its S3 API, MinIO, SeaweedFS, one bucket and a key prefix.

A blob is the object `<prefix>sha256/ab/<hex>`. A put hashes the file first (one sequential read, from the page cache
when the task just wrote it), asks whether that key exists, and only then uploads, with boto3's managed transfer:
multipart above `multipart_threshold`, parts of `multipart_chunksize` sent on `max_concurrency` threads (boto3's own
defaults: 8 MiB, 10), an aborted multipart upload cleaned up on failure. Hashing first is what makes identical
outputs free and lets the key be final from the first byte (no upload to a temporary key and a server-side copy,
which would move every byte twice). A reader that is not a file is spooled to a temporary file while hashed. A get
downloads into a temporary file beside the destination with parallel ranged GETs of `multipart_chunksize`, hashing
the parts in order as they land, and renames it into place only when the digest matches (`verify`).

Why a transfer costs about what a plain boto3 one does (issue 11: >= 80 % of its throughput, benchmarks/
bench_artifacts.py): the bytes are hashed once each way, by Odin, for the digest; boto3's own per-request work on the
same bytes is turned off, because the digest already is the integrity check, verified on every get. By default
botocore SHA-256s every part again to sign it over plain http (and on https too when, as here, no CRC header is
sent), and boto3 >= 1.36 adds a CRC of every part (`checksums`). `payload_signing=True` restores the signed body
for a store that demands it.

Only this module imports boto3 (an import-linter contract); its exceptions become `errors.*` here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from odin.controller.artifacts.digest import ALGORITHM, CHUNK, digest_of_key, hash_file, object_key
from odin.controller.artifacts.errors import ArtifactError, ArtifactNotFound, CorruptArtifact, StoreUnavailable
from odin.controller.artifacts.store import ArtifactStore, Blob, check_record_key, staged_file

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


PART_READ = 256 * 1024
"""Bytes read from a part's body at a time: what s3transfer reads (its `io_chunksize`). urllib3 2's `read(amt)`
buffers and joins what it reads, so 1 MiB reads cost measurably more CPU per byte than 256 KiB ones."""


def translate(e: Exception, what: str) -> ArtifactError:
    """A boto3/botocore exception as the store's own error (the message names the operation, never credentials)."""
    if isinstance(e, botocore.exceptions.ClientError):
        error = e.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in NOT_FOUND_CODES:
            return ArtifactNotFound(f"{what}: not in the store")
        return StoreUnavailable(f"{what}: the store answered {code or 'an error'}: {error.get('Message', '')}".strip())
    return StoreUnavailable(f"{what}: {type(e).__name__}: {e}")


class S3Store(ArtifactStore):
    """Blobs in `bucket` under `prefix` (e.g. "odin/"; "" for the whole bucket)."""

    kind = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        addressing_style: Literal["auto", "path", "virtual"] = "auto",
        checksums: Literal["when_supported", "when_required"] = "when_required",
        multipart_threshold: int = 8 * MiB,
        multipart_chunksize: int = 8 * MiB,
        max_concurrency: int = 10,
        payload_signing: bool = False,
        spool_dir: Path | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.spool_dir = spool_dir
        # Credentials left None fall through to boto3's own chain (AWS_* variables, web identity / IRSA, instance
        # profile), which is what a pod with a service-account role wants.
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=region,
        )
        config = Config(
            # Unsigned bodies (`UNSIGNED-PAYLOAD`): the request is still signed, its body is not hashed a second
            # time for the signature; what protects the bytes is the digest they are stored under (module doc).
            s3={"addressing_style": addressing_style, "payload_signing_enabled": payload_signing},
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max(10, max_concurrency * 2),
            # boto3 >= 1.36 sends CRC checksums on every upload by default; GCS's S3 API and older MinIO refuse or
            # mangle them. The digest in the key is the integrity check that matters, verified on every get.
            request_checksum_calculation=checksums,
            response_checksum_validation=checksums,
        )
        self.client: S3Client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=max_concurrency,
            use_threads=True,
        )

    def _key(self, digest: str) -> str:
        return f"{self.prefix}{object_key(digest)}"

    def uri(self, digest: str) -> str:
        return f"s3://{self.bucket}/{self._key(digest)}"

    def _record_key(self, key: str) -> str:
        return f"{self.prefix}records/{check_record_key(key)}"

    def put_record(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._record_key(key), Body=data,
                                   ContentType="application/json")  # fmt: skip
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise translate(e, f"writing record {key}") from e

    def get_record(self, key: str, limit: int) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._record_key(key))
            data: bytes = answer["Body"].read(limit + 1)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            error = translate(e, f"reading record {key}")
            if isinstance(error, ArtifactNotFound):
                return None
            raise error from e
        if len(data) > limit:
            raise CorruptArtifact(f"record {key} is larger than the {limit} bytes expected")
        return data

    def record_folders(self, prefix: str, *, after: str = "", limit: int = 1000) -> Sequence[str]:
        base = f"{self._record_key(prefix)}/"
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base, "Delimiter": "/"}
        if after:
            # From the folder `<after>/` on: S3 lists its own keys again (rolled up into `<after>/`, dropped below);
            # SeaweedFS, which lists a folder's entries by name rather than by key, starts right after it.
            params["StartAfter"] = f"{base}{after}/"
        names: list[str] = []
        try:
            while len(names) < limit:
                answer = self.client.list_objects_v2(**params, MaxKeys=min(1000, limit - len(names) + 1))
                found = [p["Prefix"][len(base) : -1] for p in answer.get("CommonPrefixes", [])]
                names += [name for name in found if name != after]
                if not answer.get("IsTruncated"):
                    break
                params["ContinuationToken"] = answer["NextContinuationToken"]
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise translate(e, f"listing records {prefix}/") from e
        return names[:limit]

    def delete_records(self, prefix: str) -> int:
        """A page of keys (1,000 at most) listed, then deleted in one request, until none is left: listing again from
        the start rather than paging on means a key deleted under the listing never confuses it. Only keys under
        `records/<prefix>/`, with its slash: `logs/p-1` never reaches `logs/p-10/`."""
        base = f"{self._record_key(prefix)}/"
        count = 0
        try:
            while True:
                answer = self.client.list_objects_v2(Bucket=self.bucket, Prefix=base, MaxKeys=1000)
                keys = [obj["Key"] for obj in answer.get("Contents", [])]
                if not keys:
                    # The folder itself: SeaweedFS's filer keeps an emptied folder, and would list it again until
                    # its own key is deleted (on AWS S3 there is no such key, and deleting it is a no-op).
                    self.client.delete_object(Bucket=self.bucket, Key=base)
                    return count
                self._delete_keys(keys)
                count += len(keys)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise translate(e, f"deleting records {prefix}/") from e

    def _delete_keys(self, keys: list[str]) -> None:
        """`DeleteObjects`, or one `DeleteObject` a key where the store does not implement it (GCS's S3 API)."""
        try:
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("NotImplemented", "MethodNotAllowed"):
                raise
            for key in keys:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            return
        failed = [f"{err.get('Key')}: {err.get('Code')}" for err in answer.get("Errors", [])]
        if failed:
            raise StoreUnavailable(f"the store refused to delete {len(failed)} record(s), first {failed[0]}")

    # -- writes ---------------------------------------------------------------------------------------------------

    def put_file(self, path: Path) -> Blob:
        digest, size = hash_file(path)
        return self._upload(path, digest, size)

    def put_stream(self, reader: BinaryIO) -> Blob:
        h = hashlib.sha256()
        size = 0
        with tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix="odin-spool-") as spool:
            while chunk := reader.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
                spool.write(chunk)
            spool.flush()
            return self._upload(Path(spool.name), f"{ALGORITHM}:{h.hexdigest()}", size)

    def _upload(self, path: Path, digest: str, size: int) -> Blob:
        existing = self.stat(digest)
        if existing is not None and existing.size == size:
            return existing  # identical bytes already stored: nothing to send
        try:
            self.client.upload_file(
                str(path),
                self.bucket,
                self._key(digest),
                ExtraArgs={"ContentType": "application/octet-stream"},
                Config=self.transfer,
            )
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise translate(e, f"upload of {digest}") from e
        except boto3.exceptions.S3UploadFailedError as e:
            raise StoreUnavailable(f"upload of {digest}: {e}") from e
        return Blob(digest, size)

    def delete(self, digest: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(digest))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            error = translate(e, f"delete of {digest}")
            if not isinstance(error, ArtifactNotFound):
                raise error from e

    # -- reads ----------------------------------------------------------------------------------------------------

    def get_file(self, digest: str, dest: Path, *, verify: bool = True) -> Blob:
        blob = self.stat(digest)
        if blob is None:
            raise ArtifactNotFound(f"download of {digest}: not in the store")
        with staged_file(dest) as tmp:
            actual = self._download(digest, blob.size, tmp, verify=verify)
            if verify and actual != digest:
                raise CorruptArtifact(f"{digest}: the bytes read back hash to {actual}")
        return blob

    def _download(self, digest: str, size: int, path: Path, *, verify: bool) -> str | None:
        """Ranged GETs of `part` bytes on `max_concurrency` threads, each written at its offset, while this thread
        hashes the parts in order as they land (read back from the page cache). The hash overlaps the download, so
        verifying costs next to nothing; s3transfer's `download_file` would need a second pass over the file."""
        concurrency = self.transfer.max_request_concurrency
        # Small parts (8 MiB by default): the hash can only start once the first part is complete, and what is left
        # to hash after the last part lands is at most one part per thread.
        part = self.transfer.multipart_chunksize
        ranges = [(offset, min(part, size - offset)) for offset in range(0, size, part)]
        h = hashlib.sha256()
        fd = os.open(path, os.O_RDWR)
        try:
            os.ftruncate(fd, size)
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="odin-s3-get") as pool:
                futures = [pool.submit(self._fetch_part, digest, fd, offset, length) for offset, length in ranges]
                try:
                    for future, (offset, length) in zip(futures, ranges, strict=True):
                        future.result()
                        if not verify:
                            continue
                        done = 0
                        while done < length:
                            chunk = os.pread(fd, min(CHUNK, length - done), offset + done)
                            if not chunk:
                                raise StoreUnavailable(f"download of {digest}: short file after part at {offset}")
                            h.update(chunk)
                            done += len(chunk)
                finally:
                    for future in futures:
                        future.cancel()
        finally:
            os.close(fd)
        return f"{ALGORITHM}:{h.hexdigest()}" if verify else None

    def _fetch_part(self, digest: str, fd: int, offset: int, length: int, attempts: int = 3) -> None:
        """Bytes [offset, offset+length) of the blob into `fd`; a connection dropped mid-body is retried (botocore
        retries the request, not the body's stream)."""
        for attempt in range(attempts):
            try:
                response = self.client.get_object(
                    Bucket=self.bucket, Key=self._key(digest), Range=f"bytes={offset}-{offset + length - 1}"
                )
                position = offset
                with contextlib.closing(response["Body"]) as body:
                    for chunk in body.iter_chunks(PART_READ):
                        os.pwrite(fd, chunk, position)
                        position += len(chunk)
                if position != offset + length:
                    raise StoreUnavailable(f"download of {digest}: part at {offset} ended early")
                return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
                error = translate(e, f"download of {digest}")
                if isinstance(error, ArtifactNotFound) or attempt + 1 == attempts:
                    raise error from e
            except (OSError, StoreUnavailable):
                if attempt + 1 == attempts:
                    raise

    @contextlib.contextmanager
    def _open_range(self, digest: str, start: int, length: int | None) -> Iterator[Iterator[bytes]]:
        if length == 0:
            yield iter(())
            return
        end = "" if length is None else str(start + length - 1)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(digest)}
        if start or length is not None:
            kwargs["Range"] = f"bytes={start}-{end}"
        try:
            response = self.client.get_object(**kwargs)
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") == "InvalidRange" and self.stat(digest) is not None:
                yield iter(())  # a range past the end: nothing to read, as with a local file
                return
            raise translate(e, f"read of {digest}") from e
        except botocore.exceptions.BotoCoreError as e:
            raise translate(e, f"read of {digest}") from e
        body = response["Body"]
        try:

            def chunks() -> Iterator[bytes]:
                try:
                    yield from body.iter_chunks(CHUNK)
                except (botocore.exceptions.BotoCoreError, OSError) as e:
                    raise StoreUnavailable(f"read of {digest}: {type(e).__name__}: {e}") from e

            yield chunks()
        finally:
            body.close()

    def open_range(
        self, digest: str, start: int = 0, length: int | None = None
    ) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        if start < 0 or (length is not None and length < 0):
            raise ValueError("start and length must not be negative")
        return self._open_range(digest, start, length)

    def stat(self, digest: str) -> Blob | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(digest))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            error = translate(e, f"lookup of {digest}")
            if isinstance(error, ArtifactNotFound):
                return None
            raise error from e
        return Blob(digest, int(head["ContentLength"]))

    def list(self) -> Iterator[Blob]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{ALGORITHM}/"):
                for obj in page.get("Contents", []):
                    digest = digest_of_key(obj["Key"][len(self.prefix) :])
                    if digest is not None:
                        yield Blob(digest, int(obj["Size"]))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            raise translate(e, "listing") from e

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist (tests, `weed`/MinIO first start); production buckets are made by
        the operator, with a lifecycle rule that aborts incomplete multipart uploads."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError:
            try:
                self.client.create_bucket(Bucket=self.bucket)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
                raise translate(e, f"creating bucket {self.bucket}") from e
        except botocore.exceptions.BotoCoreError as e:
            raise translate(e, f"bucket {self.bucket}") from e
