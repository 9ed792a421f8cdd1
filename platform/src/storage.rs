//! Object storage: the local filesystem (embedded default) or S3, behind one type.
//!
//! Every object the service writes has a deterministic key, so a re-run of a stage
//! overwrites its own output instead of adding to it (stages are idempotent).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::ids::{JobId, UploadId};

/// Parts of a streamed upload; S3 needs at least 5 MiB per part but the last.
const PART_BYTES: usize = 16 << 20;
const PARTS_IN_FLIGHT: usize = 4;

#[derive(Debug, Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// The root directory when the store is the local filesystem: readers then open
    /// files in place instead of copying them.
    local_root: Option<PathBuf>,
    /// The same store seen as one that signs URLs and takes multipart uploads part by
    /// part (S3): clients then upload straight to it. `None` on the local filesystem.
    direct: Option<Arc<dyn DirectStore>>,
}

/// A store that hands out presigned URLs and lets the uploader send the parts of a
/// multipart upload that the service creates and completes.
trait DirectStore: MultipartStore + Signer {}

impl<T: MultipartStore + Signer> DirectStore for T {}

impl Storage {
    /// Opens `file:///path` or `s3://bucket[/prefix]` (credentials and endpoint from the
    /// usual `AWS_*` variables; `AWS_ENDPOINT_URL` for S3-compatible servers).
    pub fn open(url: &str) -> anyhow::Result<Storage> {
        if let Some(path) = url.strip_prefix("file://") {
            let root = PathBuf::from(path);
            std::fs::create_dir_all(&root).with_context(|| format!("Failed to create {}", root.display()))?;
            let store = LocalFileSystem::new_with_prefix(&root).context("Failed to open the local object store")?;
            return Ok(Storage { store: Arc::new(store), local_root: Some(root), direct: None });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("MTA_STORE `{url}` names no bucket");
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT")) {
                builder = builder.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
                builder = builder.with_region("us-east-1");
            }
            let s3 = builder.build().context("Failed to configure the S3 object store")?;
            let (store, direct): (Arc<dyn ObjectStore>, Arc<dyn DirectStore>) = match prefix.trim_matches('/') {
                "" => {
                    let s3 = Arc::new(s3);
                    (Arc::clone(&s3) as Arc<dyn ObjectStore>, s3)
                }
                prefix => {
                    let prefixed = Arc::new(PrefixStore::new(s3, prefix.to_owned()));
                    (Arc::clone(&prefixed) as Arc<dyn ObjectStore>, prefixed)
                }
            };
            return Ok(Storage { store, local_root: None, direct: Some(direct) });
        }
        bail!("MTA_STORE `{url}` is neither file:///path nor s3://bucket/prefix")
    }

    /// The file behind `key` when the store is local.
    pub fn local_path(&self, key: &Key) -> Option<PathBuf> {
        let root = self.local_root.as_ref()?;
        Some(key.parts().fold(root.clone(), |path, part| path.join(part.as_ref())))
    }

    /// Streams `body` into `key` as a multipart upload, calling `inspect` on every piece
    /// (hashing, size limits). An error from the body or `inspect` aborts the upload.
    pub async fn put_stream<S, E>(
        &self,
        key: &Key,
        mut body: S,
        mut inspect: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, PutStreamError<E>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let upload = self.store.put_multipart(key).await.map_err(|e| PutStreamError::Store(e.into()))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut size = 0u64;
        let outcome: Result<(), PutStreamError<E>> = async {
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(PutStreamError::Body)?;
                inspect(&piece).map_err(PutStreamError::Body)?;
                size += piece.len() as u64;
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| PutStreamError::Store(e.into()))?;
                writer.put(piece);
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => {
                writer.finish().await.map_err(|e| PutStreamError::Store(e.into()))?;
                Ok(size)
            }
            Err(e) => {
                // Best effort: an abandoned multipart upload only costs storage.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Uploads a local file in parts, never whole in memory.
    pub async fn put_file(&self, key: &Key, path: &Path) -> anyhow::Result<()> {
        use tokio::io::AsyncReadExt;
        let mut file =
            tokio::fs::File::open(path).await.with_context(|| format!("Failed to open {}", path.display()))?;
        let upload = self.store.put_multipart(key).await.with_context(|| format!("Failed to write {key}"))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer).await.with_context(|| format!("Failed to read {}", path.display()))?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await.with_context(|| format!("Failed to write {key}"))?;
            writer.write(&buffer[..n]);
        }
        writer.finish().await.with_context(|| format!("Failed to write {key}"))?;
        Ok(())
    }

    pub async fn put(&self, key: &Key, bytes: impl Into<Bytes>) -> anyhow::Result<()> {
        self.store.put(key, PutPayload::from(bytes.into())).await.with_context(|| format!("Failed to write {key}"))?;
        Ok(())
    }

    pub async fn get(&self, key: &Key) -> anyhow::Result<Bytes> {
        let result = self.store.get(key).await.with_context(|| format!("Failed to read {key}"))?;
        result.bytes().await.with_context(|| format!("Failed to read {key}"))
    }

    /// Bytes `range` of the object.
    pub async fn get_range(&self, key: &Key, range: Range<u64>) -> anyhow::Result<Bytes> {
        self.store.get_range(key, range).await.with_context(|| format!("Failed to read {key}"))
    }

    /// Byte `ranges` of the object, in order (the store may join near ones into one request).
    pub async fn get_ranges(&self, key: &Key, ranges: &[Range<u64>]) -> anyhow::Result<Vec<Bytes>> {
        // The local store makes each range's buffer before it reads: one past the file's end
        // (a damaged index) is refused here rather than allocated.
        if let Some(path) = self.local_path(key) {
            let size = tokio::fs::metadata(&path).await.with_context(|| format!("Failed to read {key}"))?.len();
            if let Some(range) = ranges.iter().find(|range| range.start > range.end || range.end > size) {
                bail!("Failed to read {key}: bytes {}..{} are not within its {size}", range.start, range.end);
            }
        }
        self.store.get_ranges(key, ranges).await.with_context(|| format!("Failed to read {key}"))
    }

    /// The object's size and its last `bytes` bytes (all of it when shorter), in one request.
    pub async fn get_tail(&self, key: &Key, bytes: u64) -> anyhow::Result<(u64, Bytes)> {
        let options =
            object_store::GetOptions { range: Some(object_store::GetRange::Suffix(bytes)), ..Default::default() };
        let result = self.store.get_opts(key, options).await.with_context(|| format!("Failed to read {key}"))?;
        let size = result.meta.size;
        Ok((size, result.bytes().await.with_context(|| format!("Failed to read {key}"))?))
    }

    /// Bytes `range` of the object; `None` when the object does not exist.
    pub async fn get_range_opt(&self, key: &Key, range: Range<u64>) -> anyhow::Result<Option<Bytes>> {
        match self.store.get_range(key, range).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("Failed to read {key}")),
        }
    }

    /// `None` when the object does not exist.
    pub async fn get_opt(&self, key: &Key) -> anyhow::Result<Option<Bytes>> {
        match self.store.get(key).await {
            Ok(result) => Ok(Some(result.bytes().await.with_context(|| format!("Failed to read {key}"))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("Failed to read {key}")),
        }
    }

    /// A byte stream of the object, for responses that must not hold it in memory.
    pub async fn get_stream(
        &self,
        key: &Key,
    ) -> anyhow::Result<Option<(u64, impl Stream<Item = Result<Bytes, object_store::Error>> + use<>)>> {
        match self.store.get(key).await {
            Ok(result) => Ok(Some((result.meta.size, result.into_stream()))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("Failed to read {key}")),
        }
    }

    /// Keys under `prefix`, sorted.
    pub async fn list(&self, prefix: &Key) -> anyhow::Result<Vec<Key>> {
        let mut keys: Vec<Key> = self
            .store
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .with_context(|| format!("Failed to list {prefix}"))?;
        keys.sort();
        Ok(keys)
    }

    /// Deletes every object under `prefix`. On the local store it removes the folder itself,
    /// with what listing does not show: the staging files (`name#1`) of writes cut short by
    /// a killed process, and empty folders.
    pub async fn delete_prefix(&self, prefix: &Key) -> anyhow::Result<()> {
        if prefix.as_ref().is_empty() {
            bail!("Refusing to delete the whole object store");
        }
        if let Some(dir) = self.local_path(prefix) {
            return match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e).with_context(|| format!("Failed to delete {}", dir.display())),
            };
        }
        for key in self.list(prefix).await? {
            self.delete(&key).await?;
        }
        Ok(())
    }

    /// Deletes one object (nothing when it does not exist), and on the local store the
    /// staging files a killed writer left beside it.
    pub async fn delete(&self, key: &Key) -> anyhow::Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("Failed to delete {key}")),
        }
        if let (Some(path), Some(name)) = (self.local_path(key), key.filename()) {
            remove_staging_files(&path, name)
                .await
                .with_context(|| format!("Failed to delete what a write of {key} left"))?;
        }
        Ok(())
    }

    /// A local file holding the object: the object itself on a local store, else a
    /// download into `scratch` (streamed, never whole in memory).
    pub async fn local_copy(&self, key: &Key, scratch: &Path) -> anyhow::Result<PathBuf> {
        self.copy_to_local(key, None, scratch).await
    }

    /// Like [`Storage::local_copy`], but a remote object is fetched only in `ranges`, each
    /// written at its own offset of a sparse local file (a split task reading one byte
    /// range of a large CSV file needs its header and its range, not the whole file).
    pub async fn local_copy_ranges(&self, key: &Key, ranges: &[Range<u64>], scratch: &Path) -> anyhow::Result<PathBuf> {
        self.copy_to_local(key, Some(ranges), scratch).await
    }

    /// Downloads the whole object (`ranges: None`) or the given ranges of it into `scratch`.
    async fn copy_to_local(&self, key: &Key, ranges: Option<&[Range<u64>]>, scratch: &Path) -> anyhow::Result<PathBuf> {
        use tokio::io::AsyncSeekExt;
        if let Some(path) = self.local_path(key) {
            return Ok(path);
        }
        let target = scratch.join(key.filename().unwrap_or("object"));
        let mut file =
            tokio::fs::File::create(&target).await.with_context(|| format!("Failed to create {}", target.display()))?;
        let pieces: Vec<Option<Range<u64>>> = match ranges {
            None => vec![None],
            Some(ranges) => ranges.iter().filter(|r| !r.is_empty()).cloned().map(Some).collect(),
        };
        for range in pieces {
            if let Some(range) = &range {
                file.seek(std::io::SeekFrom::Start(range.start)).await?;
            }
            let options = object_store::GetOptions { range: range.map(Into::into), ..Default::default() };
            let mut stream =
                self.store.get_opts(key, options).await.with_context(|| format!("Failed to read {key}"))?.into_stream();
            while let Some(piece) = stream.next().await {
                let piece = piece.with_context(|| format!("Failed to read {key}"))?;
                file.write_all(&piece).await.with_context(|| format!("Failed to write {}", target.display()))?;
            }
        }
        file.flush().await?;
        Ok(target)
    }

    /// Whether clients may upload straight to the store ([`Storage::start_direct`]).
    pub fn takes_direct_uploads(&self) -> bool {
        self.direct.is_some()
    }

    fn direct(&self) -> anyhow::Result<&Arc<dyn DirectStore>> {
        self.direct.as_ref().context("The object store takes no direct uploads")
    }

    /// Creates a multipart upload of `key` whose parts the client sends itself; answers
    /// the store's id of it.
    pub async fn start_direct(&self, key: &Key) -> anyhow::Result<String> {
        self.direct()?.create_multipart(key).await.with_context(|| format!("Failed to start an upload of {key}"))
    }

    /// A presigned URL that lets its holder `PUT` part `part_number` (from 1) of the
    /// multipart upload `multipart_id` until `expires_in` has passed. The part number and
    /// upload are signed; the length cannot be (SigV4 presigning leaves it to the sender),
    /// so the completed object's size is checked instead.
    pub async fn presign_part(
        &self,
        key: &Key,
        multipart_id: &str,
        part_number: u32,
        expires_in: std::time::Duration,
    ) -> anyhow::Result<String> {
        let options = SignedUrlOptions::default()
            .with_query([("partNumber", part_number.to_string()), ("uploadId", multipart_id.to_owned())]);
        let url = self
            .direct()?
            .signed_url_opts(Method::PUT, key, expires_in, &options)
            .await
            .with_context(|| format!("Failed to sign a part URL of {key}"))?;
        Ok(url.to_string())
    }

    /// Completes the multipart upload `multipart_id` of `key` from its parts' ETags, in
    /// part order. The store checks them: an error here is most often the client's.
    pub async fn complete_direct(&self, key: &Key, multipart_id: &str, etags: Vec<String>) -> anyhow::Result<()> {
        let parts = etags.into_iter().map(|content_id| PartId { content_id }).collect();
        self.direct()?
            .complete_multipart(key, &multipart_id.to_owned(), parts)
            .await
            .with_context(|| format!("The store refused to complete the upload of {key}"))?;
        Ok(())
    }

    /// Aborts an unfinished multipart upload (its parts are dropped); nothing when it is
    /// already completed or gone.
    pub async fn abort_direct(&self, key: &Key, multipart_id: &str) -> anyhow::Result<()> {
        let Some(direct) = &self.direct else { return Ok(()) };
        match direct.abort_multipart(key, &multipart_id.to_owned()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("Failed to abort the upload of {key}")),
        }
    }

    /// Size and SHA-256 (hex) of the object, read through once as a stream (bounded
    /// memory whatever its size); `None` when it does not exist.
    pub async fn size_and_sha256(&self, key: &Key) -> anyhow::Result<Option<(u64, String)>> {
        let Some((_, mut stream)) = self.get_stream(key).await? else { return Ok(None) };
        let (mut hasher, mut size) = (Sha256::new(), 0u64);
        while let Some(piece) = stream.next().await {
            let piece = piece.with_context(|| format!("Failed to read {key}"))?;
            size += piece.len() as u64;
            hasher.update(&piece);
        }
        Ok(Some((size, hex::encode(hasher.finalize()))))
    }

    /// Round trip used by readiness checks.
    pub async fn check(&self) -> anyhow::Result<()> {
        let key = Key::from("health/probe");
        self.put(&key, Bytes::from_static(b"ok")).await?;
        self.get(&key).await?;
        Ok(())
    }
}

/// Removes the files the local store stages a write of `path` in (`{name}#{digits}`): a
/// writer killed before its rename leaves one behind, invisible to listing.
async fn remove_staging_files(path: &Path, name: &str) -> std::io::Result<()> {
    let Some(dir) = path.parent() else { return Ok(()) };
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    while let Some(entry) = entries.next_entry().await? {
        let file_name = entry.file_name();
        let staging = file_name.to_str().and_then(|n| n.strip_prefix(name)).and_then(|n| n.strip_prefix('#'));
        if staging.is_some_and(|suffix| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())) {
            match tokio::fs::remove_file(entry.path()).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Why a streamed put failed: the body (the client's side) or the store (ours).
#[derive(Debug)]
pub enum PutStreamError<E> {
    Body(E),
    Store(anyhow::Error),
}

/// Where each object lives. Everything sits under `tenants/{tenant}/`, so one tenant's
/// objects can be listed, exported or deleted apart from every other's; ids are UUIDs
/// generated by the service and tenants are checked names, so no request text ever
/// becomes a path segment.
pub mod keys {
    use super::*;
    use crate::ids::Tenant;

    pub fn upload(tenant: &Tenant, id: &UploadId) -> Key {
        Key::from(format!("tenants/{tenant}/uploads/{id}"))
    }

    /// Where an upload's bytes are: its own key, or the operator's object it imported.
    pub fn upload_object(record: &crate::job::UploadRecord) -> Key {
        match &record.imported_from {
            Some(key) => Key::from(key.as_str()),
            None => upload(&record.tenant, &record.upload_id),
        }
    }

    /// Everything of one job: chunks, partials, result and credits.
    pub fn job_root(tenant: &Tenant, id: &JobId) -> Key {
        Key::from(format!("tenants/{tenant}/jobs/{id}"))
    }

    fn job(tenant: &Tenant, job: &JobId, rest: &str) -> Key {
        Key::from(format!("tenants/{tenant}/jobs/{job}/{rest}"))
    }

    /// The rows split task `split` handed to every partition: one object of pieces, found
    /// through [`split_pieces`] (`chunk_file`).
    pub fn split_rows(tenant: &Tenant, id: &JobId, split: u32) -> Key {
        job(tenant, id, &format!("chunks/s{split:04}.{}", crate::chunk_file::EXTENSION))
    }

    /// Where each partition's pieces are in [`split_rows`] (`chunk_file::encode_pieces`).
    pub fn split_pieces(tenant: &Tenant, id: &JobId, split: u32) -> Key {
        job(tenant, id, &format!("chunks/s{split:04}.pieces"))
    }

    /// Where each partition's run is in [`split_rows`] as older workers stored it: 16 bytes
    /// per partition, still read.
    pub fn split_index(tenant: &Tenant, id: &JobId, split: u32) -> Key {
        job(tenant, id, &format!("chunks/s{split:04}.index"))
    }

    /// Rows of `partition` written by split task `split` (its `seq`-th flush), a
    /// `chunk_file`: the layout of workers before split objects, still read.
    pub fn chunk(tenant: &Tenant, id: &JobId, partition: u32, split: u32, seq: u32) -> Key {
        let extension = crate::chunk_file::EXTENSION;
        job(tenant, id, &format!("chunks/p{partition:05}/s{split:04}-{seq:05}.{extension}"))
    }

    pub fn chunk_prefix(tenant: &Tenant, id: &JobId, partition: u32) -> Key {
        job(tenant, id, &format!("chunks/p{partition:05}"))
    }

    pub fn chunks(tenant: &Tenant, id: &JobId) -> Key {
        job(tenant, id, "chunks")
    }

    /// The partial aggregate of one unit of work (`p00003` for a partition, `s0001` for a split of path rows).
    pub fn partial(tenant: &Tenant, id: &JobId, unit: &str) -> Key {
        job(tenant, id, &format!("partials/{unit}.{}", crate::partial_file::EXTENSION))
    }

    pub fn partials(tenant: &Tenant, id: &JobId) -> Key {
        job(tenant, id, "partials")
    }

    pub fn result(tenant: &Tenant, id: &JobId) -> Key {
        job(tenant, id, "result.json")
    }

    pub fn credits(tenant: &Tenant, id: &JobId) -> Key {
        job(tenant, id, "credits.parquet")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Tenant;

    /// Item 11 of issue 16: a worker killed mid-write leaves `…rows#1` staging files and
    /// empty folders, which listing does not show; removing a job's chunks removes them too.
    #[tokio::test]
    async fn deleting_a_prefix_removes_staging_files_and_empty_folders() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::open(&format!("file://{}", root.path().display())).unwrap();
        let (tenant, job): (Tenant, JobId) = ("acme".parse().unwrap(), JobId::random());
        storage.put(&keys::chunk(&tenant, &job, 0, 0, 0), Bytes::from_static(b"rows")).await.unwrap();
        storage.put(&keys::result(&tenant, &job), Bytes::from_static(b"{}")).await.unwrap();
        let chunks = storage.local_path(&keys::chunks(&tenant, &job)).unwrap();
        std::fs::write(chunks.join("p00000/s0000-00001.rows#1"), b"half a file").unwrap();
        std::fs::create_dir_all(chunks.join("p00001")).unwrap();
        std::fs::create_dir_all(chunks.join("p00002")).unwrap();
        std::fs::write(chunks.join("p00002/s0001-00000.rows#17"), b"").unwrap();

        storage.delete_prefix(&keys::chunks(&tenant, &job)).await.unwrap();

        assert!(!chunks.exists(), "chunk folder left: {:?}", walk(&chunks));
        assert!(storage.get_opt(&keys::result(&tenant, &job)).await.unwrap().is_some());
        storage.delete_prefix(&keys::job_root(&tenant, &job)).await.unwrap();
        let job_dir = storage.local_path(&keys::job_root(&tenant, &job)).unwrap();
        assert!(!job_dir.exists());
        storage.delete_prefix(&keys::job_root(&tenant, &job)).await.unwrap();
    }

    #[tokio::test]
    async fn deleting_an_object_removes_its_staging_files_only() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::open(&format!("file://{}", root.path().display())).unwrap();
        let tenant: Tenant = "acme".parse().unwrap();
        let (upload, other) = (UploadId::random(), UploadId::random());
        storage.put(&keys::upload(&tenant, &upload), Bytes::from_static(b"a,b")).await.unwrap();
        storage.put(&keys::upload(&tenant, &other), Bytes::from_static(b"a,b")).await.unwrap();
        let path = storage.local_path(&keys::upload(&tenant, &upload)).unwrap();
        let dir = path.parent().unwrap().to_owned();
        std::fs::write(dir.join(format!("{upload}#2")), b"half").unwrap();
        std::fs::write(dir.join(format!("{other}#3")), b"half").unwrap();

        storage.delete(&keys::upload(&tenant, &upload)).await.unwrap();
        storage.delete(&keys::upload(&tenant, &upload)).await.unwrap();

        let mut left: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        let mut expected = vec![other.to_string(), format!("{other}#3")];
        expected.sort();
        assert_eq!(left, expected);
    }

    #[tokio::test]
    async fn ranges_of_a_local_object_are_read_in_order_and_one_past_its_end_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let storage = Storage::open(&format!("file://{}", root.path().display())).unwrap();
        let (tenant, job): (Tenant, JobId) = ("acme".parse().unwrap(), JobId::random());
        let key = keys::split_rows(&tenant, &job, 0);
        storage.put(&key, Bytes::from_static(b"0123456789")).await.unwrap();
        let read = storage.get_ranges(&key, &[6..10, 0..2, 3..3]).await.unwrap();
        assert_eq!(read, [&b"6789"[..], b"01", b""]);
        for damaged in [8..11, 0..u64::MAX, Range { start: 5, end: 4 }] {
            let error = storage.get_ranges(&key, &[0..2, damaged]).await.unwrap_err().to_string();
            assert!(error.contains("s0000.rows") && error.contains("within its 10"), "{error}");
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        entries.flatten().flat_map(|e| [vec![e.path()], walk(&e.path())].concat()).collect()
    }
}
