//! Guest SDK for sera-host plugins (`sera:plugin@0.1.0`, and `@0.1.1` for `tools-exec`). Each
//! world is a module with a small trait and an export macro, all written by one macro
//! (`world!`); the WIT bindings, the batch entry points and the default `init` are done here.
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

/// One world of the SDK: its WIT bindings, what a plugin author uses from them, the trait to
/// implement (with the default `init`), the adapter from that trait to the world's `Guest`, and
/// the exported `export_*!` macro. `$d` is a `$` passed in, so the macro this one writes can
/// have parameters of its own.
macro_rules! world {
    (
        $d:tt
        $(#[$doc:meta])*
        mod $module:ident {
            path: $path:literal,
            world: $world:literal,
            bindings: $bindings:literal,
            hidden_export: $hidden:ident = $hidden_name:literal,
            export: $(#[$export_doc:meta])* $export:ident,
            guest: $($guest:ident)::+,
            uses: { $($uses:item)* }
            $(#[$trait_doc:meta])*
            trait $trait_name:ident ($kind:literal) { $($trait_items:item)* }
            impl Guest { $($impl_items:item)* }
        }
    ) => {
        $(#[$doc])*
        pub mod $module {
            wit_bindgen::generate!({
                path: $path,
                world: $world,
                pub_export_macro: true,
                export_macro_name: $hidden_name,
                default_bindings_module: $bindings,
            });

            pub use $($guest)::+::Guest;
            $($uses)*

            $(#[$trait_doc])*
            pub trait $trait_name {
                /// Called once per instance with the stage's config as JSON text.
                fn init(config: &str) -> Result<(), String> {
                    crate::no_config($kind, config)
                }
                $($trait_items)*
            }

            #[doc(hidden)]
            pub struct Adapter<T>(core::marker::PhantomData<T>);

            impl<T: $trait_name> Guest for Adapter<T> {
                fn init(config: String) -> Result<(), String> {
                    T::init(&config)
                }
                $($impl_items)*
            }
        }

        $(#[$export_doc])*
        #[macro_export]
        macro_rules! $export {
            ($d t:ty) => {
                type __SeraPluginAdapter = $crate::$module::Adapter<$d t>;
                $crate::$module::$hidden!(__SeraPluginAdapter with_types_in $crate::$module);
            };
        }
    };
}

world! {
    $
    /// Verifiers score a candidate patch (P2) against a reference patch (P1).
    mod verifier {
        path: "../../wit/v0.1.0",
        world: "verifier",
        bindings: "sera_plugin::verifier",
        hidden_export: __export_verifier_world = "__export_verifier_world",
        export: /// Exports a type implementing [`verifier::Verifier`] as the component's verifier.
            export_verifier,
        guest: exports::sera::plugin::verify,
        uses: {
            pub use exports::sera::plugin::verify::{PatchPair, Verdict};
            pub use sera::plugin::log;
        }
        trait Verifier("verifier") {
            /// Scores one pair; an `Err` fails this pair only.
            fn verify(pair: &PatchPair) -> Result<Verdict, String>;
        }
        impl Guest {
            fn verify(pair: PatchPair) -> Result<Verdict, String> {
                T::verify(&pair)
            }
            fn verify_batch(pairs: Vec<PatchPair>) -> Vec<Result<Verdict, String>> {
                pairs.iter().map(T::verify).collect()
            }
        }
    }
}

world! {
    $
    /// Trajectory filters keep or drop a trajectory (with its patch) before training.
    mod filter {
        path: "../../wit/v0.1.0",
        world: "trajectory-filter",
        bindings: "sera_plugin::filter",
        hidden_export: __export_filter_world = "__export_filter_world",
        export: /// Exports a type implementing [`filter::Filter`] as the component's trajectory filter.
            export_filter,
        guest: exports::sera::plugin::filter,
        uses: {
            pub use sera::plugin::log;
            pub use sera::plugin::tokenizer::{count_chat_tokens, count_tokens};
            pub use sera::plugin::types::{Message, Role, ToolCall, ToolSpec, Trajectory};
        }
        trait Filter("filter") {
            /// `Ok(None)` keeps the trajectory, `Ok(Some(reason))` drops it.
            fn check(trajectory: &Trajectory, patch: &str) -> Result<Option<String>, String>;
        }
        impl Guest {
            fn check(trajectory: Trajectory, patch: String) -> Result<Option<String>, String> {
                T::check(&trajectory, &patch)
            }
        }
    }
}

world! {
    $
    /// Truncation policies fit a trajectory into a token budget by keeping a prefix of it.
    mod truncation {
        path: "../../wit/v0.1.0",
        world: "truncation",
        bindings: "sera_plugin::truncation",
        hidden_export: __export_truncation_world = "__export_truncation_world",
        export: /// Exports a type implementing [`truncation::Truncation`] as the component's truncation policy.
            export_truncation,
        guest: exports::sera::plugin::truncate,
        uses: {
            pub use sera::plugin::log;
            pub use sera::plugin::tokenizer::{count_chat_tokens, count_tokens};
            pub use sera::plugin::types::{Message, Role, ToolCall, ToolSpec, Trajectory};
        }
        trait Truncation("truncation") {
            /// The trajectory cut to fit `budget` tokens: its messages must be a prefix of the
            /// input's. `Err` drops the item.
            fn truncate(trajectory: Trajectory, budget: u32) -> Result<Trajectory, String>;
        }
        impl Guest {
            fn truncate(trajectory: Trajectory, budget: u32) -> Result<Trajectory, String> {
                T::truncate(trajectory, budget)
            }
        }
    }
}

world! {
    $
    /// PR synthesisers turn rollout 1 (trajectory and patch) into a pull-request-like text,
    /// asking the pipeline's teacher through `llm::complete`.
    mod pr_synthesizer {
        path: "../../wit/v0.1.0",
        world: "pr-synthesizer",
        bindings: "sera_plugin::pr_synthesizer",
        hidden_export: __export_pr_synthesizer_world = "__export_pr_synthesizer_world",
        export: /// Exports a type implementing [`pr_synthesizer::PrSynthesizer`] as the component's PR synthesiser.
            export_pr_synthesizer,
        guest: exports::sera::plugin::pr_synthesis,
        uses: {
            pub use sera::plugin::llm;
            pub use sera::plugin::log;
            pub use sera::plugin::types::{Message, Role, ToolCall, ToolSpec, Trajectory};
        }
        trait PrSynthesizer("pr-synthesizer") {
            fn synthesize(trajectory: &Trajectory, patch: &str) -> Result<String, String>;
        }
        impl Guest {
            fn synthesize(trajectory: Trajectory, patch: String) -> Result<String, String> {
                T::synthesize(&trajectory, &patch)
            }
        }
    }
}

world! {
    $
    /// Tool sets: the tools an agent calls in its workspace (preopened at `/workspace`).
    mod tools {
        path: "../../wit/v0.1.0",
        world: "tools",
        bindings: "sera_plugin::tools",
        hidden_export: __export_tools_world = "__export_tools_world",
        export: /// Exports a type implementing [`tools::Tools`] as the component's tool set.
            export_tools,
        guest: exports::sera::plugin::tool_provider,
        uses: {
            pub use exports::sera::plugin::tool_provider::ToolSpec;
            pub use sera::plugin::log;
        }
        trait Tools("tools") {
            /// The tools to offer the model, in a stable order.
            fn list_tools() -> Vec<ToolSpec>;
            /// Runs one tool call (`arguments` is a JSON object text); the text is the tool
            /// result.
            fn call(name: &str, arguments: &str) -> Result<String, String>;
        }
        impl Guest {
            fn list_tools() -> Vec<ToolSpec> {
                T::list_tools()
            }
            fn call(name: String, arguments: String) -> Result<String, String> {
                T::call(&name, &arguments)
            }
        }
    }
}

// Behind a feature: its bindings (the 0.1.1 package) would otherwise be merged into every
// component built with the SDK, changing the other worlds' bytes.
#[cfg(feature = "tools-exec")]
world! {
    $
    /// Tool sets whose tools also run commands (`sera:plugin@0.1.1`): the `tools` world plus
    /// `exec::run`, each command in the host's sandbox.
    mod tools_exec {
        path: "../../wit/v0.1.1",
        world: "tools-exec",
        bindings: "sera_plugin::tools_exec",
        hidden_export: __export_tools_exec_world = "__export_tools_exec_world",
        export: /// Exports a type implementing [`tools_exec::Tools`] as the component's tool set.
            export_tools_exec,
        guest: exports::sera::plugin::tool_provider,
        uses: {
            pub use exports::sera::plugin::tool_provider::ToolSpec;
            pub use sera::plugin::{exec, log};
        }
        trait Tools("tools-exec") {
            /// The tools to offer the model, in a stable order.
            fn list_tools() -> Vec<ToolSpec>;
            /// Runs one tool call (`arguments` is a JSON object text); the text is the tool
            /// result. [`exec::run`] runs a command line in the workspace.
            fn call(name: &str, arguments: &str) -> Result<String, String>;
        }
        impl Guest {
            fn list_tools() -> Vec<ToolSpec> {
                T::list_tools()
            }
            fn call(name: String, arguments: String) -> Result<String, String> {
                T::call(&name, &arguments)
            }
        }
    }
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
