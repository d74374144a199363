//! The Qwen tokenizer built from the real files in ../shared/fixtures/tokenizers.

use std::path::PathBuf;

use sera_host::tokenizer::{TokenCounter, TokenizerSource};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/tokenizers")
}

fn qwen() -> TokenCounter {
    TokenCounter::new(&TokenizerSource::BpeFiles {
        dir: fixtures().join("qwen2"),
        config: fixtures().join("qwen3/tokenizer_config.json"),
    })
    .expect("Qwen tokenizer from the fixture files")
}

#[test]
fn qwen_special_tokens_and_words() {
    let q = qwen();
    assert!(!q.is_estimate());
    assert_eq!(
        q.encode("<|im_start|>hello<|im_end|>").unwrap().unwrap(),
        vec![151644, 14990, 151645]
    );
    // Ids read from vocab.json: Hello 9707, ',' 11, 'Ġworld' 1879, '!' 0.
    assert_eq!(
        q.encode("Hello, world!").unwrap().unwrap(),
        vec![9707, 11, 1879, 0]
    );
    // Non-special added tokens (special: false in tokenizer_config.json) are matched too.
    let ids = q.encode("<tool_call>\n{}\n</tool_call>").unwrap().unwrap();
    assert_eq!(ids.first(), Some(&151657));
    assert_eq!(ids.last(), Some(&151658));
    assert_eq!(q.count("<|im_start|>hello<|im_end|>"), 3);
}

#[test]
fn real_python_source_counts_are_plausible_and_cached() {
    let q = qwen();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import textwrap; print(open(textwrap.__file__).read(), end='')",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let ids = q.encode(&text).unwrap().unwrap();
    // Byte-level BPE on Python: between 2.5 and 5 bytes per token.
    let ratio = text.len() as f64 / ids.len() as f64;
    assert!((2.5..5.0).contains(&ratio), "{ratio}");
    assert_eq!(q.count(&text), ids.len() as u32);
    assert_eq!(q.count(&text), ids.len() as u32, "cached");
    // Indentation runs are merged tokens, so four spaces are not four tokens.
    assert!(q.count("        return x") < 8);
}

#[test]
fn estimate_says_what_it_is_and_bad_files_are_named() {
    let e = TokenCounter::new(&TokenizerSource::Estimate).unwrap();
    assert!(e.is_estimate());
    assert!(e.description.contains("ESTIMATE"));
    assert_eq!(e.count("12345678"), 2);
    assert_eq!(e.count("123456789"), 3);
    let err = TokenCounter::new(&TokenizerSource::BpeFiles {
        dir: fixtures().join("qwen2"),
        config: fixtures().join("qwen2/vocab.json"),
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("vocab.json: no `added_tokens_decoder`"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("tokenizer.json");
    std::fs::write(&bad, "{\"version\": 1}").unwrap();
    let err = TokenCounter::new(&TokenizerSource::Json(bad))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("tokenizer.json: not a Hugging Face tokenizer.json"),
        "{err}"
    );
}

#[test]
fn a_tokenizer_json_gives_the_same_tokens() {
    let q = qwen();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, q.to_json().unwrap().unwrap()).unwrap();
    let j = TokenCounter::new(&TokenizerSource::Json(path)).unwrap();
    assert!(j.description.contains("tokenizer.json"));
    for text in [
        "<|im_start|>user\nFix `f` in `a.py`.<|im_end|>\n",
        "def f(x):\n    return x  # café ünïcode\n",
        "<tool_call>\n{\"name\": \"view\"}\n</tool_call>",
    ] {
        assert_eq!(j.encode(text).unwrap(), q.encode(text).unwrap(), "{text}");
    }
}
