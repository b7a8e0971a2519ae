//! A results directory to S3 (or any S3-compatible store): the sink that
//! runs after the results are written, for local runs, a cluster run's
//! client and `bfgg runs upload` alike.
//!
//! Every file of the directory goes to `s3://bucket/prefix/<run>/<path>`,
//! `summary.json` last: its `upload` field says what happened (`uploaded`
//! with the URL, or `failed` with the error), so a summary in the bucket
//! means the rest is there. Credentials and region come from the standard
//! AWS chain (environment, profile files, SSO, container and instance
//! roles); `AWS_ENDPOINT_URL` or an explicit endpoint selects an
//! S3-compatible store, addressed path-style. Files up to the part size go
//! in one `PutObject`, larger ones in a multipart upload read one part at a
//! time (memory stays at one part). Every request carries `Content-MD5`,
//! so the store checks each body; afterwards each object's size and ETag
//! are compared with the local file. The SDK retries with backoff.
//! Nothing local is ever deleted: a failed upload leaves the directory as it
//! was, plus the failure in `summary.json`, for `bfgg runs upload` later.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

/// S3's smallest part (all but the last of a multipart upload).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// Files larger than this go up in parts of this size.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;

/// `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket.
    pub bucket: String,
    /// Key prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl FromStr for S3Url {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s.strip_prefix("s3://").ok_or_else(|| {
            format!("`{s}` is not an S3 URL: write s3://bucket or s3://bucket/prefix")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!(
                "`{bucket}` is not a bucket name (3-63 characters: lowercase letters, digits, - and .)"
            ));
        }
        Ok(S3Url {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// Where and how to upload.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The bucket and prefix.
    pub url: S3Url,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); `None`: AWS, or
    /// `AWS_ENDPOINT_URL` if set.
    pub endpoint: Option<String>,
    /// Region; `None`: the AWS chain's, else `us-east-1`.
    pub region: Option<String>,
    /// Multipart part size (at least [`MIN_PART_SIZE`]).
    pub part_size: usize,
    /// Attempts per request (the SDK's standard retry, with backoff).
    pub attempts: u32,
}

impl S3Config {
    /// Defaults for `url`.
    pub fn new(url: S3Url) -> Self {
        Self {
            url,
            endpoint: None,
            region: None,
            part_size: DEFAULT_PART_SIZE,
            attempts: 4,
        }
    }
}

/// What happened to a results directory's upload, as `summary.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatus {
    /// `uploaded` or `failed`.
    pub state: String,
    /// Where the run's objects are (`s3://bucket/prefix/<run>/`).
    pub url: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why an upload failed; each message names the store, the bucket or the
/// object, and what to check.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The store did not answer.
    #[error("cannot reach the S3 store{}: {detail}", endpoint_note(.endpoint))]
    Unreachable {
        /// The endpoint, if not AWS's.
        endpoint: Option<String>,
        /// The transport error.
        detail: String,
    },
    /// The store refused the credentials.
    #[error(
        "the S3 store refused the credentials ({code}): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role"
    )]
    Credentials {
        /// The store's error code.
        code: String,
    },
    /// The bucket is not there.
    #[error("bucket `{bucket}` does not exist (or is not visible with these credentials)")]
    NoBucket {
        /// The bucket.
        bucket: String,
    },
    /// An object could not be written.
    #[error("uploading {key}: {detail}")]
    Object {
        /// The key.
        key: String,
        /// What the store or the SDK said.
        detail: String,
    },
    /// An object was written but does not match the local file.
    #[error("{key} in the store does not match the local file: {detail}")]
    Mismatch {
        /// The key.
        key: String,
        /// Size or checksum difference.
        detail: String,
    },
    /// Reading the local directory.
    #[error(transparent)]
    Local(#[from] anyhow::Error),
}

fn endpoint_note(endpoint: &Option<String>) -> String {
    endpoint
        .as_ref()
        .map(|e| format!(" at {e}"))
        .unwrap_or_default()
}

/// Upload progress, for a progress bar.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Bytes uploaded so far.
    pub done: u64,
    /// Bytes to upload in all.
    pub total: u64,
    /// The file being uploaded.
    pub file: String,
}

/// Builds a client for `config`.
pub async fn client(config: &S3Config) -> aws_sdk_s3::Client {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(config.attempts.max(1)))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(120))
                .build(),
        );
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint.clone());
    }
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let shared = loader.load().await;
    let custom_endpoint = shared.endpoint_url().is_some();
    let mut s3 = aws_sdk_s3::config::Builder::from(&shared)
        // Stores other than AWS check Content-MD5 but not always the newer
        // CRC checksums: send and check them only where S3 requires them.
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .force_path_style(custom_endpoint);
    if shared.region().is_none() {
        s3 = s3.region(aws_config::Region::new("us-east-1"));
    }
    aws_sdk_s3::Client::from_conf(s3.build())
}

/// Uploads every file of `dir` to `<url>/<run>/`, `summary.json` last with
/// its `upload` field set, and records the outcome in the local
/// `summary.json` either way. Returns the run's URL.
pub async fn upload_results(
    config: &S3Config,
    dir: &Path,
    run: &str,
    mut on_progress: impl FnMut(&Progress),
) -> Result<String, UploadError> {
    let run_url = format!("{}/{run}/", config.url);
    let result = upload_inner(config, dir, run, &run_url, &mut on_progress).await;
    let status = match &result {
        Ok(()) => UploadStatus {
            state: "uploaded".into(),
            url: run_url.clone(),
            error: None,
        },
        Err(e) => UploadStatus {
            state: "failed".into(),
            url: run_url.clone(),
            error: Some(e.to_string()),
        },
    };
    if result.is_err() {
        record_status(dir, &status)?;
    }
    result.map(|()| run_url)
}

async fn upload_inner(
    config: &S3Config,
    dir: &Path,
    run: &str,
    run_url: &str,
    on_progress: &mut impl FnMut(&Progress),
) -> Result<(), UploadError> {
    let files = files_of(dir)?;
    let client = client(config).await;
    check_bucket(&client, config).await?;
    let total: u64 = files.iter().map(|(_, size)| size).sum();
    let mut done = 0u64;
    let key_of = |rel: &str| {
        if config.url.prefix.is_empty() {
            format!("{run}/{rel}")
        } else {
            format!("{}/{run}/{rel}", config.url.prefix)
        }
    };
    for (rel, size) in files.iter().filter(|(rel, _)| rel != "summary.json") {
        on_progress(&Progress {
            done,
            total,
            file: rel.clone(),
        });
        put_file(
            &client,
            config,
            &dir.join(rel),
            &key_of(rel),
            *size,
            &mut |n| {
                on_progress(&Progress {
                    done: done + n,
                    total,
                    file: rel.clone(),
                })
            },
        )
        .await?;
        done += size;
    }
    // The summary last, saying it is all there.
    let summary = dir.join("summary.json");
    if summary.is_file() {
        record_status(
            dir,
            &UploadStatus {
                state: "uploaded".into(),
                url: run_url.to_owned(),
                error: None,
            },
        )?;
        let size = std::fs::metadata(&summary)
            .with_context(|| format!("reading {}", summary.display()))?
            .len();
        put_file(
            &client,
            config,
            &summary,
            &key_of("summary.json"),
            size,
            &mut |_| {},
        )
        .await?;
    }
    on_progress(&Progress {
        done: total,
        total,
        file: String::new(),
    });
    Ok(())
}

/// Sets `upload` in `dir/summary.json` (kept in the file only: the wire's
/// summary has no such field), written to a temporary file and renamed.
pub fn record_status(dir: &Path, status: &UploadStatus) -> anyhow::Result<()> {
    let path = dir.join("summary.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("upload".into(), serde_json::to_value(status)?);
    }
    let tmp = dir.join(".summary.json.tmp");
    std::fs::write(&tmp, format!("{}\n", serde_json::to_string_pretty(&v)?))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The upload status in `dir/summary.json`, if any.
pub fn status_of(dir: &Path) -> Option<UploadStatus> {
    let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    serde_json::from_value(v.get("upload")?.clone()).ok()
}

/// Every file under `dir` (relative, `/`-separated, sorted) with its size;
/// dot-files (temporaries) left out.
fn files_of(dir: &Path) -> anyhow::Result<Vec<(String, u64)>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, u64)>) -> anyhow::Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading {}", dir.display()))?;
        entries.sort();
        for path in entries {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            let meta =
                std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
            if meta.is_dir() {
                walk(base, &path, out)?;
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(base)
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or(name);
                out.push((rel, meta.len()));
            }
        }
        Ok(())
    }
    anyhow::ensure!(dir.is_dir(), "{} is not a results directory", dir.display());
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// Classifies an SDK error: transport, credentials, missing bucket, other.
fn classify<E>(e: &SdkError<E>, config: &S3Config, key: &str) -> UploadError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => UploadError::Unreachable {
            endpoint: config
                .endpoint
                .clone()
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok()),
            detail: error_chain(e),
        },
        _ => match e.code() {
            Some(
                code @ ("InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "InvalidToken"
                | "ExpiredToken"
                | "InvalidClientTokenId"),
            ) => UploadError::Credentials {
                code: code.to_owned(),
            },
            Some("NoSuchBucket") => UploadError::NoBucket {
                bucket: config.url.bucket.clone(),
            },
            _ => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if status == Some(404) && key.is_empty() {
                    return UploadError::NoBucket {
                        bucket: config.url.bucket.clone(),
                    };
                }
                if matches!(status, Some(401 | 403)) {
                    return UploadError::Credentials {
                        code: e.code().unwrap_or("403").to_owned(),
                    };
                }
                UploadError::Object {
                    key: key.to_owned(),
                    detail: match (e.code(), e.message()) {
                        (Some(c), Some(m)) => format!("{c}: {m}"),
                        (Some(c), None) => c.to_owned(),
                        _ => error_chain(e),
                    },
                }
            }
        },
    }
}

/// An error with its sources, one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

async fn check_bucket(client: &aws_sdk_s3::Client, config: &S3Config) -> Result<(), UploadError> {
    client
        .head_bucket()
        .bucket(&config.url.bucket)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify(&e, config, ""))
}

fn md5_base64(bytes: &[u8]) -> (String, [u8; 16]) {
    let digest: [u8; 16] = Md5::digest(bytes).into();
    (
        base64::engine::general_purpose::STANDARD.encode(digest),
        digest,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One file to `key`: a single `PutObject` up to the part size, else a
/// multipart upload; then its size and ETag checked against the local file.
async fn put_file(
    client: &aws_sdk_s3::Client,
    config: &S3Config,
    path: &Path,
    key: &str,
    size: u64,
    on_bytes: &mut impl FnMut(u64),
) -> Result<(), UploadError> {
    let part_size = config.part_size.max(MIN_PART_SIZE);
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let expected_etag = if size as usize <= part_size {
        let mut body = Vec::with_capacity(size as usize);
        file.read_to_end(&mut body)
            .with_context(|| format!("reading {}", path.display()))?;
        let (md5, digest) = md5_base64(&body);
        client
            .put_object()
            .bucket(&config.url.bucket)
            .key(key)
            .content_md5(md5)
            .content_length(body.len() as i64)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(&e, config, key))?;
        on_bytes(size);
        hex(&digest)
    } else {
        multipart(client, config, &mut file, path, key, part_size, on_bytes).await?
    };
    verify(client, config, key, size, &expected_etag).await
}

async fn multipart(
    client: &aws_sdk_s3::Client,
    config: &S3Config,
    file: &mut std::fs::File,
    path: &Path,
    key: &str,
    part_size: usize,
    on_bytes: &mut impl FnMut(u64),
) -> Result<String, UploadError> {
    let created = client
        .create_multipart_upload()
        .bucket(&config.url.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| classify(&e, config, key))?;
    let upload_id = created.upload_id().unwrap_or_default().to_owned();
    let result = async {
        let mut parts = Vec::new();
        let mut digests = Vec::new();
        let mut sent = 0u64;
        let mut buf = vec![0u8; part_size];
        for number in 1.. {
            let n =
                read_full(file, &mut buf).with_context(|| format!("reading {}", path.display()))?;
            if n == 0 {
                break;
            }
            let (md5, digest) = md5_base64(&buf[..n]);
            digests.extend_from_slice(&digest);
            let part = client
                .upload_part()
                .bucket(&config.url.bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .content_md5(md5)
                .content_length(n as i64)
                .body(ByteStream::from(buf[..n].to_vec()))
                .send()
                .await
                .map_err(|e| classify(&e, config, key))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build(),
            );
            sent += n as u64;
            on_bytes(sent);
        }
        client
            .complete_multipart_upload()
            .bucket(&config.url.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(&e, config, key))?;
        let (_, of_digests) = md5_base64(&digests);
        Ok::<_, UploadError>(format!("{}-{}", hex(&of_digests), parts.len()))
    }
    .await;
    if result.is_err() {
        let _ = client
            .abort_multipart_upload()
            .bucket(&config.url.bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    result
}

/// Fills `buf` as far as the file goes; the bytes read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The object's size must equal the file's; its ETag, when the store gives
/// an MD5-style one, the local MD5 (`hex` or `hex-parts` for multipart).
async fn verify(
    client: &aws_sdk_s3::Client,
    config: &S3Config,
    key: &str,
    size: u64,
    expected_etag: &str,
) -> Result<(), UploadError> {
    let head = client
        .head_object()
        .bucket(&config.url.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| classify(&e, config, key))?;
    let stored = head.content_length().unwrap_or(-1);
    if stored != size as i64 {
        return Err(UploadError::Mismatch {
            key: key.to_owned(),
            detail: format!("{stored} bytes stored, {size} local"),
        });
    }
    let etag = head
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_ascii_lowercase();
    let md5_like = etag.len() >= 32 && etag[..32].bytes().all(|b| b.is_ascii_hexdigit());
    if md5_like && etag != expected_etag {
        return Err(UploadError::Mismatch {
            key: key.to_owned(),
            detail: format!("ETag {etag}, local MD5 {expected_etag}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
