//! The tool specs sent to the model in the `tools` field, SWE-agent's descriptions with the
//! workspace's path in the examples.

use serde_json::json;

pub struct Spec {
    pub name: &'static str,
    pub description: String,
    pub parameters: serde_json::Value,
}

/// SWE-agent's `bash` tool (listed only where the host runs commands).
pub fn bash(root: &str) -> Spec {
    Spec {
        name: "bash",
        description: format!("runs the given command directly in bash\n* The command runs in {root}, the repository, with the repository's Python environment first on PATH\n* Each call starts a fresh shell: `cd` and variables do not carry over, files do\n* A command that runs too long is cancelled; do not start servers or interactive programs\n* There is no network\n"),
        parameters: json!({
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The bash command to execute."}
            },
            "required": ["command"]
        }),
    }
}

pub fn specs(root: &str) -> Vec<Spec> {
    vec![
        Spec {
            name: "str_replace_editor",
            description: "Custom editing tool for viewing, creating and editing files\n* State is persistent across command calls and discussions with the user\n* If `path` is a file, `view` displays the result of applying `cat -n`. If `path` is a directory, `view` lists non-hidden files and directories up to 2 levels deep\n* The `create` command cannot be used if the specified `path` already exists as a file\n* If a `command` generates a long output, it will be truncated and marked with `<response clipped>`\n* The `undo_edit` command will revert the last edit made to the file at `path`\n\nNotes for using the `str_replace` command:\n* The `old_str` parameter should match EXACTLY one or more consecutive lines from the original file. Be mindful of whitespaces!\n* If the `old_str` parameter is not unique in the file, the replacement will not be performed. Make sure to include enough context in `old_str` to make it unique\n* The `new_str` parameter should contain the edited lines that should replace the `old_str`\n".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": {
                        "type": "string",
                        "description": "The commands to run. Allowed options are: `view`, `create`, `str_replace`, `insert`, `undo_edit`.",
                        "enum": ["view", "create", "str_replace", "insert", "undo_edit"]
                    },
                    "path": {
                        "type": "string",
                        "description": format!("Absolute path to file or directory, e.g. `{root}/file.py` or `{root}`.")
                    },
                    "file_text": {
                        "type": "string",
                        "description": "Required parameter of `create` command, with the content of the file to be created."
                    },
                    "old_str": {
                        "type": "string",
                        "description": "Required parameter of `str_replace` command containing the string in `path` to replace."
                    },
                    "new_str": {
                        "type": "string",
                        "description": "Optional parameter of `str_replace` command containing the new string (if not given, no string will be added). Required parameter of `insert` command containing the string to insert."
                    },
                    "insert_line": {
                        "type": "integer",
                        "description": "Required parameter of `insert` command. The `new_str` will be inserted AFTER the line `insert_line` of `path`."
                    },
                    "view_range": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "description": "Optional parameter of `view` command when `path` points to a file. If none is given, the full file is shown. If provided, the file will be shown in the indicated line number range, e.g. [11, 12] will show lines 11 and 12. Indexing at 1 to start. Setting `[start_line, -1]` shows all lines from `start_line` to the end of the file."
                    }
                },
                "required": ["command", "path"]
            }),
        },
        Spec {
            name: "find_file",
            description: "finds all files with the given name or pattern in dir. If dir is not provided, searches in the current directory\n".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "file_name": {"type": "string", "description": "the name of the file or pattern to search for. supports shell-style wildcards (e.g. *.py)"},
                    "dir": {"type": "string", "description": "the directory to search in (if not provided, searches in the current directory)"}
                },
                "required": ["file_name"]
            }),
        },
        Spec {
            name: "search_dir",
            description: "searches for search_term in all files in dir. If dir is not provided, searches in the current directory\n".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "search_term": {"type": "string", "description": "the term to search for"},
                    "dir": {"type": "string", "description": "the directory to search in (if not provided, searches in the current directory)"}
                },
                "required": ["search_term"]
            }),
        },
        Spec {
            name: "search_file",
            description: "searches for search_term in file. If file is not provided, searches in the current open file\n".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "search_term": {"type": "string", "description": "the term to search for"},
                    "file": {"type": "string", "description": "the file to search in (if not provided, searches in the current open file)"}
                },
                "required": ["search_term"]
            }),
        },
        Spec {
            name: "submit",
            description: "submits the current file\n".into(),
            parameters: json!({"type": "object", "properties": {}, "required": []}),
        },
    ]
}
