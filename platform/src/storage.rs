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
use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
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
}

impl Storage {
    /// Opens `file:///path` or `s3://bucket[/prefix]` (credentials and endpoint from the
    /// usual `AWS_*` variables; `AWS_ENDPOINT_URL` for S3-compatible servers).
    pub fn open(url: &str) -> anyhow::Result<Storage> {
        if let Some(path) = url.strip_prefix("file://") {
            let root = PathBuf::from(path);
            std::fs::create_dir_all(&root).with_context(|| format!("Failed to create {}", root.display()))?;
            let store = LocalFileSystem::new_with_prefix(&root).context("Failed to open the local object store")?;
            return Ok(Storage { store: Arc::new(store), local_root: Some(root) });
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
            let store: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
                "" => Arc::new(s3),
                prefix => Arc::new(PrefixStore::new(s3, prefix.to_owned())),
            };
            return Ok(Storage { store, local_root: None });
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

    pub async fn delete_prefix(&self, prefix: &Key) -> anyhow::Result<()> {
        for key in self.list(prefix).await? {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("Failed to delete {key}")),
            }
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

    /// Round trip used by readiness checks.
    pub async fn check(&self) -> anyhow::Result<()> {
        let key = Key::from("health/probe");
        self.put(&key, Bytes::from_static(b"ok")).await?;
        self.get(&key).await?;
        Ok(())
    }
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

    fn job(tenant: &Tenant, job: &JobId, rest: &str) -> Key {
        Key::from(format!("tenants/{tenant}/jobs/{job}/{rest}"))
    }

    /// Rows of `partition` written by split task `split` (its `seq`-th flush).
    pub fn chunk(tenant: &Tenant, id: &JobId, partition: u32, split: u32, seq: u32) -> Key {
        job(tenant, id, &format!("chunks/p{partition:05}/s{split:04}-{seq:05}.parquet"))
    }

    pub fn chunk_prefix(tenant: &Tenant, id: &JobId, partition: u32) -> Key {
        job(tenant, id, &format!("chunks/p{partition:05}"))
    }

    pub fn chunks(tenant: &Tenant, id: &JobId) -> Key {
        job(tenant, id, "chunks")
    }

    /// The partial aggregate of one unit of work (`p00003` for a partition, `s0001` for a split of path rows).
    pub fn partial(tenant: &Tenant, id: &JobId, unit: &str) -> Key {
        job(tenant, id, &format!("partials/{unit}.json"))
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
