//! `builtin:max-avg-tool-tokens`: drops a trajectory whose tool results average more than
//! `max` tokens (counted with the host's tokenizer). Config: `{"max": 600}`.

/// The `max` of a config text; 600 when absent.
pub fn parse_max(config: &str) -> Result<u64, String> {
    let c = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let v: serde_json::Value = serde_json::from_str(c)
        .map_err(|e| format!("max-avg-tool-tokens: config is not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("max-avg-tool-tokens: config must be a JSON object")?;
    let mut max = 600;
    for (k, v) in obj {
        match k.as_str() {
            "max" => {
                max = v
                    .as_u64()
                    .ok_or("max-avg-tool-tokens: `max` must be a whole number")?
            }
            other => {
                return Err(format!(
                    "max-avg-tool-tokens: unknown config key `{other}` (known: max)"
                ))
            }
        }
    }
    Ok(max)
}

/// The verdict for tool results of `counts` tokens each.
pub fn verdict(max: u64, counts: &[u32]) -> Option<String> {
    if counts.is_empty() {
        return None;
    }
    let avg = counts.iter().map(|&c| f64::from(c)).sum::<f64>() / counts.len() as f64;
    (avg > max as f64).then(|| format!("max-avg-tool-tokens: {avg:.0} > {max}"))
}

#[cfg(target_family = "wasm")]
mod guest {
    use super::*;
    use std::cell::Cell;

    wit_bindgen::generate!({
        path: "../../wit/v0.1.0",
        world: "trajectory-filter",
    });

    use exports::sera::plugin::filter::Guest;
    use sera::plugin::tokenizer::count_tokens;
    use sera::plugin::types::{Role, Trajectory};

    thread_local! {
        static MAX: Cell<u64> = const { Cell::new(600) };
    }

    struct MaxAvgToolTokens;

    impl Guest for MaxAvgToolTokens {
        fn init(config: String) -> Result<(), String> {
            let max = parse_max(&config)?;
            MAX.with(|m| m.set(max));
            Ok(())
        }

        fn check(trajectory: Trajectory, _patch: String) -> Result<Option<String>, String> {
            let counts: Vec<u32> = trajectory
                .messages
                .iter()
                .filter(|m| m.role == Role::Tool)
                .map(|m| count_tokens(&m.content))
                .collect();
            Ok(verdict(MAX.with(Cell::get), &counts))
        }
    }

    export!(MaxAvgToolTokens);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_tool_results() {
        assert_eq!(verdict(600, &[]), None);
        assert_eq!(verdict(600, &[500, 700]), None);
        assert_eq!(
            verdict(599, &[500, 700]).unwrap(),
            "max-avg-tool-tokens: 600 > 599"
        );
        assert_eq!(parse_max("{}").unwrap(), 600);
    }
}
