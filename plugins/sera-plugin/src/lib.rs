//! Guest SDK for sera-host plugins (`sera:plugin@0.1.0`). Each world is a module with a small
//! trait and an export macro; the WIT bindings, the batch entry points and the default `init`
//! are done here.
//!
//! ```ignore
//! use sera_plugin::verifier::{PatchPair, Verdict, Verifier};
//!
//! struct Exact;
//!
//! impl Verifier for Exact {
//!     fn verify(pair: &PatchPair) -> Result<Verdict, String> {
//!         let same = pair.reference == pair.candidate;
//!         Ok(Verdict { score: Some(if same { 1.0 } else { 0.0 }), matched: same as u32, total: 1, detail: String::new() })
//!     }
//! }
//!
//! sera_plugin::export_verifier!(Exact);
//! ```
//!
//! Build for `wasm32-wasip2` (see the project `sera-host plugin new` writes); the result is a
//! component that `sera-host plugin check` can test and every stage can load.

/// Whether `config` is empty or `{}` (whitespace aside): what the default `init` accepts.
pub fn config_is_empty(config: &str) -> bool {
    let compact: String = config.chars().filter(|c| !c.is_whitespace()).collect();
    compact.is_empty() || compact == "{}"
}

/// The default `init`: no config.
pub fn no_config(plugin: &str, config: &str) -> Result<(), String> {
    if config_is_empty(config) {
        Ok(())
    } else {
        Err(format!("{plugin}: takes no config, got {config}"))
    }
}

/// Verifiers score a candidate patch (P2) against a reference patch (P1).
pub mod verifier {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "verifier",
        pub_export_macro: true,
        export_macro_name: "__export_verifier_world",
        default_bindings_module: "sera_plugin::verifier",
    });

    pub use exports::sera::plugin::verify::{Guest, PatchPair, Verdict};
    pub use sera::plugin::log;

    pub trait Verifier {
        /// Called once per instance with the stage's config as JSON text.
        fn init(config: &str) -> Result<(), String> {
            crate::no_config("verifier", config)
        }
        /// Scores one pair; an `Err` fails this pair only.
        fn verify(pair: &PatchPair) -> Result<Verdict, String>;
    }

    #[doc(hidden)]
    pub struct Adapter<T>(core::marker::PhantomData<T>);

    impl<T: Verifier> Guest for Adapter<T> {
        fn init(config: String) -> Result<(), String> {
            T::init(&config)
        }
        fn verify(pair: PatchPair) -> Result<Verdict, String> {
            T::verify(&pair)
        }
        fn verify_batch(pairs: Vec<PatchPair>) -> Vec<Result<Verdict, String>> {
            pairs.iter().map(T::verify).collect()
        }
    }
}

/// Exports a type implementing [`verifier::Verifier`] as the component's verifier.
#[macro_export]
macro_rules! export_verifier {
    ($t:ty) => {
        type __SeraPluginVerifier = $crate::verifier::Adapter<$t>;
        $crate::verifier::__export_verifier_world!(__SeraPluginVerifier with_types_in $crate::verifier);
    };
}

/// Trajectory filters keep or drop a trajectory (with its patch) before training.
pub mod filter {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "trajectory-filter",
        pub_export_macro: true,
        export_macro_name: "__export_filter_world",
        default_bindings_module: "sera_plugin::filter",
    });

    pub use exports::sera::plugin::filter::Guest;
    pub use sera::plugin::log;
    pub use sera::plugin::tokenizer::{count_chat_tokens, count_tokens};
    pub use sera::plugin::types::{Message, Role, ToolCall, ToolSpec, Trajectory};

    pub trait Filter {
        fn init(config: &str) -> Result<(), String> {
            crate::no_config("filter", config)
        }
        /// `Ok(None)` keeps the trajectory, `Ok(Some(reason))` drops it.
        fn check(trajectory: &Trajectory, patch: &str) -> Result<Option<String>, String>;
    }

    #[doc(hidden)]
    pub struct Adapter<T>(core::marker::PhantomData<T>);

    impl<T: Filter> Guest for Adapter<T> {
        fn init(config: String) -> Result<(), String> {
            T::init(&config)
        }
        fn check(trajectory: Trajectory, patch: String) -> Result<Option<String>, String> {
            T::check(&trajectory, &patch)
        }
    }
}

/// Exports a type implementing [`filter::Filter`] as the component's trajectory filter.
#[macro_export]
macro_rules! export_filter {
    ($t:ty) => {
        type __SeraPluginFilter = $crate::filter::Adapter<$t>;
        $crate::filter::__export_filter_world!(__SeraPluginFilter with_types_in $crate::filter);
    };
}

/// Truncation policies fit a trajectory into a token budget by keeping a prefix of it.
pub mod truncation {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "truncation",
        pub_export_macro: true,
        export_macro_name: "__export_truncation_world",
        default_bindings_module: "sera_plugin::truncation",
    });

    pub use exports::sera::plugin::truncate::Guest;
    pub use sera::plugin::log;
    pub use sera::plugin::tokenizer::{count_chat_tokens, count_tokens};
    pub use sera::plugin::types::{Message, Role, ToolCall, ToolSpec, Trajectory};

    pub trait Truncation {
        fn init(config: &str) -> Result<(), String> {
            crate::no_config("truncation", config)
        }
        /// The trajectory cut to fit `budget` tokens: its messages must be a prefix of the
        /// input's. `Err` drops the item.
        fn truncate(trajectory: Trajectory, budget: u32) -> Result<Trajectory, String>;
    }

    #[doc(hidden)]
    pub struct Adapter<T>(core::marker::PhantomData<T>);

    impl<T: Truncation> Guest for Adapter<T> {
        fn init(config: String) -> Result<(), String> {
            T::init(&config)
        }
        fn truncate(trajectory: Trajectory, budget: u32) -> Result<Trajectory, String> {
            T::truncate(trajectory, budget)
        }
    }
}

/// Exports a type implementing [`truncation::Truncation`] as the component's truncation policy.
#[macro_export]
macro_rules! export_truncation {
    ($t:ty) => {
        type __SeraPluginTruncation = $crate::truncation::Adapter<$t>;
        $crate::truncation::__export_truncation_world!(__SeraPluginTruncation with_types_in $crate::truncation);
    };
}

/// PR synthesisers turn rollout 1 (trajectory and patch) into a pull-request-like text, asking
/// the pipeline's teacher through `llm::complete`.
pub mod pr_synthesizer {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "pr-synthesizer",
        pub_export_macro: true,
        export_macro_name: "__export_pr_synthesizer_world",
        default_bindings_module: "sera_plugin::pr_synthesizer",
    });

    pub use exports::sera::plugin::pr_synthesis::Guest;
    pub use sera::plugin::llm;
    pub use sera::plugin::log;
    pub use sera::plugin::types::{Message, Role, ToolCall, ToolSpec, Trajectory};

    pub trait PrSynthesizer {
        fn init(config: &str) -> Result<(), String> {
            crate::no_config("pr-synthesizer", config)
        }
        fn synthesize(trajectory: &Trajectory, patch: &str) -> Result<String, String>;
    }

    #[doc(hidden)]
    pub struct Adapter<T>(core::marker::PhantomData<T>);

    impl<T: PrSynthesizer> Guest for Adapter<T> {
        fn init(config: String) -> Result<(), String> {
            T::init(&config)
        }
        fn synthesize(trajectory: Trajectory, patch: String) -> Result<String, String> {
            T::synthesize(&trajectory, &patch)
        }
    }
}

/// Exports a type implementing [`pr_synthesizer::PrSynthesizer`] as the component's PR synthesiser.
#[macro_export]
macro_rules! export_pr_synthesizer {
    ($t:ty) => {
        type __SeraPluginPrSynthesizer = $crate::pr_synthesizer::Adapter<$t>;
        $crate::pr_synthesizer::__export_pr_synthesizer_world!(__SeraPluginPrSynthesizer with_types_in $crate::pr_synthesizer);
    };
}

/// Tool sets: the tools an agent calls in its workspace (preopened at `/workspace`).
pub mod tools {
    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "tools",
        pub_export_macro: true,
        export_macro_name: "__export_tools_world",
        default_bindings_module: "sera_plugin::tools",
    });

    pub use exports::sera::plugin::tool_provider::{Guest, ToolSpec};
    pub use sera::plugin::log;

    pub trait Tools {
        fn init(config: &str) -> Result<(), String> {
            crate::no_config("tools", config)
        }
        /// The tools to offer the model, in a stable order.
        fn list_tools() -> Vec<ToolSpec>;
        /// Runs one tool call (`arguments` is a JSON object text); the text is the tool result.
        fn call(name: &str, arguments: &str) -> Result<String, String>;
    }

    #[doc(hidden)]
    pub struct Adapter<T>(core::marker::PhantomData<T>);

    impl<T: Tools> Guest for Adapter<T> {
        fn init(config: String) -> Result<(), String> {
            T::init(&config)
        }
        fn list_tools() -> Vec<ToolSpec> {
            T::list_tools()
        }
        fn call(name: String, arguments: String) -> Result<String, String> {
            T::call(&name, &arguments)
        }
    }
}

/// Exports a type implementing [`tools::Tools`] as the component's tool set.
#[macro_export]
macro_rules! export_tools {
    ($t:ty) => {
        type __SeraPluginTools = $crate::tools::Adapter<$t>;
        $crate::tools::__export_tools_world!(__SeraPluginTools with_types_in $crate::tools);
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_init_accepts_only_no_config() {
        assert!(super::no_config("x", "").is_ok());
        assert!(super::no_config("x", " { } ").is_ok());
        let e = super::no_config("x", r#"{"a":1}"#).unwrap_err();
        assert!(e.contains("takes no config"), "{e}");
    }
}
