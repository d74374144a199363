//! `builtin:max-patch-lines`: drops a trajectory whose patch changes more than `max` lines
//! (`+`/`-` lines of the unified diff, file headers not counted). Config: `{"max": 40}`.

/// Changed lines of a unified diff.
pub fn changed_lines(patch: &str) -> usize {
    patch
        .lines()
        .filter(|l| {
            (l.starts_with('+') && !l.starts_with("+++"))
                || (l.starts_with('-') && !l.starts_with("---"))
        })
        .count()
}

/// The `max` of a config text; 40 when absent.
pub fn parse_max(config: &str) -> Result<u64, String> {
    let c = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let v: serde_json::Value =
        serde_json::from_str(c).map_err(|e| format!("max-patch-lines: config is not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("max-patch-lines: config must be a JSON object")?;
    let mut max = 40;
    for (k, v) in obj {
        match k.as_str() {
            "max" => {
                max = v
                    .as_u64()
                    .ok_or("max-patch-lines: `max` must be a whole number")?
            }
            other => {
                return Err(format!(
                    "max-patch-lines: unknown config key `{other}` (known: max)"
                ))
            }
        }
    }
    Ok(max)
}

pub fn verdict(max: u64, patch: &str) -> Option<String> {
    let n = changed_lines(patch) as u64;
    (n > max).then(|| format!("max-patch-lines: {n} changed lines > {max}"))
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
    use sera::plugin::types::Trajectory;

    thread_local! {
        static MAX: Cell<u64> = const { Cell::new(40) };
    }

    struct MaxPatchLines;

    impl Guest for MaxPatchLines {
        fn init(config: String) -> Result<(), String> {
            let max = parse_max(&config)?;
            MAX.with(|m| m.set(max));
            Ok(())
        }

        fn check(_trajectory: Trajectory, patch: String) -> Result<Option<String>, String> {
            Ok(verdict(MAX.with(Cell::get), &patch))
        }
    }

    export!(MaxPatchLines);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_changed_lines_not_headers() {
        let p =
            "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@\n x\n-y\n+z\n+w\n";
        assert_eq!(changed_lines(p), 3);
        assert_eq!(verdict(3, p), None);
        assert_eq!(
            verdict(2, p).unwrap(),
            "max-patch-lines: 3 changed lines > 2"
        );
        assert_eq!(parse_max("").unwrap(), 40);
        assert!(parse_max(r#"{"maximum": 1}"#)
            .unwrap_err()
            .contains("maximum"));
    }
}
