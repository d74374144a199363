//! Teachers: where an agent's next message comes from. An OpenAI-compatible HTTP endpoint
//! (vLLM, SGLang, a hosted API), the corpus's recordings of one, or the scripted test double.

pub mod check;
mod openai;
mod protocol;
mod record;
pub mod scripted;
pub mod serve;
pub mod text_calls;

pub use openai::{endpoint_url, OpenAiTeacher, RetryPolicy};
pub use protocol::{
    parse_response, parse_response_with, BoxFuture, ChatRequest, Completion, ParseOptions, Teacher,
    TeacherError,
};
pub use record::{RecordingTeacher, ReplayTeacher};
pub use scripted::ScriptedTeacher;
