//! Record and replay: every exchange goes into the corpus keyed by (sha256 of the canonical
//! request, sample). A recording teacher answers from the corpus when it can and asks the live
//! teacher otherwise; a replay teacher only answers from the corpus.

use std::sync::{Arc, Mutex};

use super::protocol::{
    parse_response_with, BoxFuture, ChatRequest, Completion, ParseOptions, Teacher, TeacherError,
};
use crate::corpus::{Corpus, Exchange};

pub type SharedCorpus = Arc<Mutex<Corpus>>;

fn lookup(
    corpus: &SharedCorpus,
    sha: &str,
    sample: u32,
    parse: &ParseOptions,
) -> Result<Option<Completion>, TeacherError> {
    let found = corpus
        .lock()
        .expect("corpus lock")
        .exchange(sha, sample)
        .map_err(|e| TeacherError::Storage(format!("{e:#}")))?;
    let Some(ex) = found else { return Ok(None) };
    let (message, finish_reason, usage) =
        parse_response_with(&ex.response, parse).map_err(|e| {
            TeacherError::Storage(format!(
                "recorded response {sha}/{sample} does not parse: {e}"
            ))
        })?;
    Ok(Some(Completion {
        message,
        finish_reason,
        usage,
        latency_ms: ex.latency_ms,
        request_sha256: sha.to_string(),
        sample,
        raw_body: ex.response,
    }))
}

/// Records what a live teacher says; serves recorded answers without asking again, so an
/// interrupted run resumes without paying twice.
pub struct RecordingTeacher {
    inner: Box<dyn Teacher>,
    corpus: SharedCorpus,
    parse: ParseOptions,
}

impl RecordingTeacher {
    pub fn new(inner: Box<dyn Teacher>, corpus: SharedCorpus) -> Self {
        RecordingTeacher {
            inner,
            corpus,
            parse: ParseOptions::default(),
        }
    }

    /// How recorded answers are read: as the live teacher reads them.
    pub fn with_parse(mut self, parse: ParseOptions) -> Self {
        self.parse = parse;
        self
    }
}

impl Teacher for RecordingTeacher {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sample: u32,
    ) -> BoxFuture<'a, Result<Completion, TeacherError>> {
        Box::pin(async move {
            let sha = request.sha256().to_string();
            if let Some(c) = lookup(&self.corpus, &sha, sample, &self.parse.for_request(request))? {
                return Ok(c);
            }
            let c = self.inner.complete(request, sample).await?;
            let ex = Exchange {
                request_sha256: sha,
                sample,
                response: c.raw_body.clone(),
                teacher: self.inner.describe(),
                model: request.model.clone(),
                latency_ms: c.latency_ms,
                prompt_tokens: c.usage.prompt_tokens,
                completion_tokens: c.usage.completion_tokens,
            };
            self.corpus
                .lock()
                .expect("corpus lock")
                .put_exchange(request.canonical(), &ex)
                .map_err(|e| TeacherError::Storage(format!("{e:#}")))?;
            // Answer with what a replay will read back, so both give identical trajectories.
            lookup(
                &self.corpus,
                &ex.request_sha256,
                sample,
                &self.parse.for_request(request),
            )?
            .ok_or_else(|| TeacherError::Storage("an exchange just stored is missing".into()))
        })
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Serves recorded exchanges only; anything else is "not recorded", never a network call.
pub struct ReplayTeacher {
    corpus: SharedCorpus,
    parse: ParseOptions,
}

impl ReplayTeacher {
    pub fn new(corpus: SharedCorpus) -> Self {
        ReplayTeacher {
            corpus,
            parse: ParseOptions::default(),
        }
    }

    pub fn with_parse(mut self, parse: ParseOptions) -> Self {
        self.parse = parse;
        self
    }
}

impl Teacher for ReplayTeacher {
    fn complete<'a>(
        &'a self,
        request: &'a ChatRequest,
        sample: u32,
    ) -> BoxFuture<'a, Result<Completion, TeacherError>> {
        Box::pin(async move {
            let sha = request.sha256().to_string();
            lookup(&self.corpus, &sha, sample, &self.parse.for_request(request))?.ok_or(
                TeacherError::NotRecorded {
                    request_sha256: sha,
                    sample,
                },
            )
        })
    }

    fn describe(&self) -> String {
        "replay".into()
    }
}
