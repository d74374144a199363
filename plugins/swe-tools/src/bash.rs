//! The `bash` tool's observation, in SWE-agent's words. Plain std code with no dependencies: the
//! host compiles this same file (`sera-host sandbox run` prints the observation a rollout would
//! see), so the two cannot drift.

/// What the host's `exec` returned, as the observation needs it.
pub struct Ran<'a> {
    pub command: &'a str,
    /// stdout and stderr interleaved, already cut to the host's cap.
    pub output: &'a str,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub timeout_s: u32,
    /// Bytes the host dropped beyond its cap.
    pub dropped_bytes: u64,
}

/// SWE-agent's text for a command that printed nothing.
pub const NO_OUTPUT: &str = "Your command ran successfully and did not produce any output.";

/// Observations longer than this many characters are cut in the middle (SWE-agent's
/// `max_observation_length`).
pub const MAX_OBSERVATION_CHARS: usize = 100_000;

/// Python's `repr` of a string, as SWE-agent's `{command!r}` shows it.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The observation the model sees for one `bash` call.
pub fn observation(r: &Ran) -> String {
    if r.timed_out {
        let mut text = format!(
            "The command {} was cancelled because it took more than {} seconds. Please try a different command that completes more quickly.",
            py_repr(r.command),
            r.timeout_s
        );
        if !r.output.is_empty() {
            text = format!("{}\n{text}", cut(r.output, 0));
        }
        return text;
    }
    if r.output.is_empty() && r.dropped_bytes == 0 {
        return match r.exit_code {
            Some(0) | None => NO_OUTPUT.to_string(),
            Some(code) => {
                format!("Your command failed with exit code {code} and did not produce any output.")
            }
        };
    }
    cut(r.output, r.dropped_bytes)
}

fn cut(output: &str, dropped_bytes: u64) -> String {
    let chars = output.chars().count();
    if chars <= MAX_OBSERVATION_CHARS && dropped_bytes == 0 {
        return output.to_string();
    }
    let keep = MAX_OBSERVATION_CHARS.min(chars);
    let head: String = output.chars().take(keep / 2).collect();
    let tail: String = output.chars().skip(chars - (keep - keep / 2)).collect();
    let elided = (chars - keep) as u64 + dropped_bytes;
    format!(
        "{head}\n<NOTE>Observations should not exceed {MAX_OBSERVATION_CHARS} characters. {elided} characters were elided. Please try a different command that produces less output or use head/tail/grep/redirect the output to a file. Do not use interactive pagers.</NOTE>\n{tail}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ran<'a>(command: &'a str, output: &'a str) -> Ran<'a> {
        Ran {
            command,
            output,
            exit_code: Some(0),
            timed_out: false,
            timeout_s: 30,
            dropped_bytes: 0,
        }
    }

    #[test]
    fn silent_success_and_silent_failure() {
        assert_eq!(observation(&ran("true", "")), NO_OUTPUT);
        let mut r = ran("false", "");
        r.exit_code = Some(1);
        assert_eq!(
            observation(&r),
            "Your command failed with exit code 1 and did not produce any output."
        );
    }

    #[test]
    fn timeout_quotes_the_command_like_python() {
        let mut r = ran("sleep 1000", "");
        r.timed_out = true;
        assert_eq!(observation(&r), "The command 'sleep 1000' was cancelled because it took more than 30 seconds. Please try a different command that completes more quickly.");
        assert_eq!(py_repr("echo 'hi'"), "\"echo 'hi'\"");
        assert_eq!(py_repr("a'b\"c\n"), "'a\\'b\"c\\n'");
    }

    #[test]
    fn long_output_is_cut_in_the_middle_with_a_note() {
        let long = "q".repeat(MAX_OBSERVATION_CHARS + 10);
        let o = observation(&ran("yes", &long));
        assert!(
            o.contains("10 characters were elided"),
            "{}",
            &o[49_990..50_200]
        );
        assert_eq!(o.matches('q').count(), MAX_OBSERVATION_CHARS);
        let mut r = ran("cat big", "abc");
        r.dropped_bytes = 5000;
        assert!(observation(&r).contains("5000 characters were elided"));
    }
}
