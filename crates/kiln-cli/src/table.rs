//! Plain-text tables for the terminal: a header row, a rule, then the rows, each column as wide as its widest cell.

/// The rows (the first is the header) as left-aligned text, one line a row.
pub(crate) fn table<R: AsRef<[String]>>(rows: &[R]) -> String {
    aligned(rows, false)
}

/// As [`table`], with numbers right-aligned (tables of metrics).
pub(crate) fn number_table<R: AsRef<[String]>>(rows: &[R]) -> String {
    aligned(rows, true)
}

fn aligned<R: AsRef<[String]>>(rows: &[R], right_numbers: bool) -> String {
    let n = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let mut widths = vec![0usize; n];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric = |cell: &str| cell.parse::<f64>().is_ok() || cell.starts_with('±');
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(c, &w)| if right_numbers && i > 0 && numeric(c) { format!("{c:>w$}") } else { format!("{c:<w$}") })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("  "));
            out.push('\n');
        }
    }
    out
}
