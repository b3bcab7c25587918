//! Human-readable tables, or JSON for scripts.

use serde_json::Value;

/// Prints `rows` (objects) as a table of `columns`, or as JSON.
pub fn table(json: bool, value: &Value, rows: &[Value], columns: &[(&str, &str)]) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
        return;
    }
    let cell = |row: &Value, key: &str| match &row[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|(key, title)| {
            rows.iter()
                .map(|r| cell(r, key).len())
                .max()
                .unwrap_or(0)
                .max(title.len())
        })
        .collect();
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(columns.iter().map(|(_, t)| (*t).to_owned()).collect());
    for r in rows {
        line(columns.iter().map(|(k, _)| cell(r, k)).collect());
    }
}

/// Prints one record as `key: value` lines, or as JSON.
pub fn record(json: bool, value: &Value, fields: &[(&str, &str)]) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
        return;
    }
    for (key, title) in fields {
        if let Some(v) = value.get(*key).filter(|v| !v.is_null()) {
            println!(
                "{title}: {}",
                v.as_str().map_or_else(|| v.to_string(), str::to_owned)
            );
        }
    }
}
