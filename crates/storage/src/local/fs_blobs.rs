//! [`BlobStore`] on a local directory.
//!
//! `root/tmp/<id>` holds blobs being written; `root/blobs/<xx>/<id>` holds finished ones, fanned
//! out by the first two hex digits. Finishing follows the durable-rename recipe: fdatasync the
//! temp file, rename it into place, fsync the destination directory. A crash leaves either no
//! file in `blobs/` or the whole blob, never a prefix of it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::task::{JoinHandle, spawn_blocking};

use crate::blob::{BlobId, BlobStore, BlobWriter, ByteStream};
use crate::{Error, Result};

/// Bytes buffered by a writer before they are handed to a blocking write.
const WRITE_BATCH: usize = 1 << 20;
/// Bytes per read; one read runs ahead of the consumer.
const READ_CHUNK: u64 = 512 << 10;

pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root.join("tmp"))?;
        for i in 0..=255u8 {
            fs::create_dir_all(root.join("blobs").join(hex::encode([i])))?;
        }
        File::open(root)?.sync_all()?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    fn final_path(&self, id: &BlobId) -> PathBuf {
        self.root.join("blobs").join(&id.as_str()[..2]).join(id.as_str())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> Result<T> {
    spawn_blocking(f)
        .await
        .map_err(|e| Error::Io(io::Error::other(e)))?
        .map_err(Error::Io)
}

fn not_found_as_blob(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::BlobNotFound
    } else {
        Error::Io(e)
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn create(&self) -> Result<Box<dyn BlobWriter>> {
        let id = BlobId::random();
        let tmp = self.root.join("tmp").join(id.as_str());
        let dest = self.final_path(&id);
        let tmp2 = tmp.clone();
        let file = blocking(move || File::options().write(true).create_new(true).open(tmp2)).await?;
        Ok(Box::new(FsBlobWriter {
            id,
            tmp,
            dest,
            file: Some(file),
            pending: None,
            chunks: Vec::new(),
            buffered: 0,
            done: false,
        }))
    }

    async fn read(&self, id: &BlobId, offset: u64, len: u64) -> Result<ByteStream> {
        let path = self.final_path(id);
        let file = Arc::new(
            spawn_blocking(move || File::open(path))
                .await
                .map_err(io::Error::other)?
                .map_err(not_found_as_blob)?,
        );
        let end = offset.saturating_add(len);
        let first = (offset < end).then(|| spawn_read(file.clone(), offset, end));
        let state = (file, offset, end, first);
        let stream = futures::stream::unfold(state, |(file, pos, end, pending)| async move {
            let handle = pending?;
            let result = match handle.await {
                Ok(r) => r,
                Err(e) => Err(io::Error::other(e)),
            };
            match result {
                Ok(bytes) => {
                    let next_pos = pos + bytes.len() as u64;
                    let next = (next_pos < end).then(|| spawn_read(file.clone(), next_pos, end));
                    Some((Ok(bytes), (file, next_pos, end, next)))
                }
                Err(e) => Some((Err(Error::Io(e)), (file, end, end, None))),
            }
        });
        Ok(stream.boxed())
    }

    async fn len(&self, id: &BlobId) -> Result<u64> {
        let path = self.final_path(id);
        let md = spawn_blocking(move || fs::metadata(path))
            .await
            .map_err(io::Error::other)?
            .map_err(not_found_as_blob)?;
        Ok(md.len())
    }

    async fn delete(&self, id: &BlobId) -> Result<()> {
        let path = self.final_path(id);
        blocking(move || match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
    }

    async fn list(&self) -> Result<Vec<BlobId>> {
        let dir = self.root.join("blobs");
        blocking(move || {
            let mut ids = Vec::new();
            for fan in fs::read_dir(dir)? {
                for entry in fs::read_dir(fan?.path())? {
                    if let Some(id) = entry?.file_name().to_str().and_then(BlobId::parse) {
                        ids.push(id);
                    }
                }
            }
            Ok(ids)
        })
        .await
    }

    async fn sweep_unfinished(&self) -> Result<usize> {
        let dir = self.root.join("tmp");
        blocking(move || {
            let mut n = 0;
            for entry in fs::read_dir(dir)? {
                fs::remove_file(entry?.path())?;
                n += 1;
            }
            Ok(n)
        })
        .await
    }
}

/// Reads `[pos, min(pos + READ_CHUNK, end))`; a short file is an error, never a short blob.
fn spawn_read(file: Arc<File>, pos: u64, end: u64) -> JoinHandle<io::Result<Bytes>> {
    spawn_blocking(move || {
        let n = usize::try_from((end - pos).min(READ_CHUNK)).map_err(io::Error::other)?;
        let mut buf = vec![0u8; n];
        file.read_exact_at(&mut buf, pos)?;
        Ok(Bytes::from(buf))
    })
}

struct FsBlobWriter {
    id: BlobId,
    tmp: PathBuf,
    dest: PathBuf,
    /// The file, unless a blocking write holds it.
    file: Option<File>,
    pending: Option<JoinHandle<io::Result<File>>>,
    chunks: Vec<Bytes>,
    buffered: usize,
    done: bool,
}

impl FsBlobWriter {
    /// Waits for the write in flight and takes the file back.
    async fn settle(&mut self) -> Result<()> {
        if let Some(handle) = self.pending.take() {
            let file = handle.await.map_err(io::Error::other)??;
            self.file = Some(file);
        }
        Ok(())
    }

    /// Hands the buffered chunks to a blocking write that runs while the caller continues.
    async fn flush(&mut self) -> Result<()> {
        self.settle().await?;
        let mut file = self.file.take().ok_or(Error::Unavailable)?;
        let chunks = std::mem::take(&mut self.chunks);
        self.buffered = 0;
        self.pending = Some(spawn_blocking(move || {
            for c in &chunks {
                file.write_all(c)?;
            }
            Ok(file)
        }));
        Ok(())
    }
}

#[async_trait]
impl BlobWriter for FsBlobWriter {
    fn id(&self) -> &BlobId {
        &self.id
    }

    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.buffered += data.len();
        self.chunks.push(data);
        if self.buffered >= WRITE_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64> {
        self.flush().await?;
        self.settle().await?;
        let file = self.file.take().ok_or(Error::Unavailable)?;
        let (tmp, dest) = (self.tmp.clone(), self.dest.clone());
        let len = blocking(move || {
            file.sync_data()?;
            let len = file.metadata()?.len();
            drop(file);
            fs::rename(&tmp, &dest)?;
            if let Some(dir) = dest.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(len)
        })
        .await?;
        self.done = true;
        Ok(len)
    }
}

impl Drop for FsBlobWriter {
    fn drop(&mut self) {
        if !self.done {
            // Abandoned (error, client gone): the temp file must not outlive the writer.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}
