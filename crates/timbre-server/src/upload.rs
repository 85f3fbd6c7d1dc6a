//! Multipart form parsing shared by the upload endpoints: one audio file plus text fields, with
//! errors that name the field (400 for a broken form, 422 for a bad value).

use std::collections::BTreeMap;

use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;
use bytes::Bytes;

use crate::error::ApiError;

pub struct UploadedFile {
    pub bytes: Bytes,
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

impl UploadedFile {
    /// Extension or MIME type, whichever says more, for the decoder's format probe.
    pub fn hint(&self) -> Option<String> {
        self.filename
            .as_deref()
            .and_then(|f| f.rsplit_once('.').map(|(_, ext)| ext.to_string()))
            .or_else(|| self.content_type.clone().filter(|ct| ct != "application/octet-stream"))
    }
}

/// A parsed form: the `file` part and every other field as text (repeated fields keep all
/// values, e.g. `timestamp_granularities[]`).
pub struct Form {
    pub file: Option<UploadedFile>,
    pub fields: BTreeMap<String, Vec<String>>,
}

fn form_error(e: &MultipartError) -> ApiError {
    // axum reports an over-limit body through the multipart stream.
    if e.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "payload_too_large",
            e.body_text(),
        );
    }
    ApiError::bad_request("invalid_multipart", format!("malformed multipart body: {}", e.body_text()))
}

impl Form {
    pub async fn read(mut multipart: Multipart, file_field: &str) -> Result<Self, ApiError> {
        let mut form = Form { file: None, fields: BTreeMap::new() };
        while let Some(field) = multipart.next_field().await.map_err(|e| form_error(&e))? {
            let name = field.name().unwrap_or_default().to_string();
            if name == file_field {
                let filename = field.file_name().map(str::to_string);
                let content_type = field.content_type().map(str::to_string);
                let bytes = field.bytes().await.map_err(|e| form_error(&e))?;
                form.file = Some(UploadedFile { bytes, filename, content_type });
            } else {
                let text = field.text().await.map_err(|e| form_error(&e))?;
                form.fields.entry(name).or_default().push(text);
            }
        }
        Ok(form)
    }

    pub fn require_file(&mut self, name: &str) -> Result<UploadedFile, ApiError> {
        let file = self.file.take().ok_or_else(|| {
            ApiError::bad_request(
                "missing_file",
                format!("the form has no `{name}` part: send the audio as multipart field `{name}`"),
            )
            .with_param(name)
        })?;
        if file.bytes.is_empty() {
            return Err(ApiError::invalid_field(name, "the uploaded file is empty"));
        }
        Ok(file)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(|v| v.last()).map(String::as_str).map(str::trim).filter(|s| !s.is_empty())
    }

    /// A numeric field, 422 naming it when it does not parse.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.text(name)
            .map(|raw| {
                raw.parse::<T>().map_err(|_| ApiError::invalid_field(name, format!("`{raw}` is not a valid number")))
            })
            .transpose()
    }
}
