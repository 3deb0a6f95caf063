//! Aligned text tables, the one renderer for every table homeboy prints: plain columns for the CLI's
//! readable output ([`table`]) and Markdown for benchmark reports that are pasted into notes ([`markdown`]).

/// `rows` under `header`, columns padded to their widest cell and separated by two spaces, trailing spaces
/// trimmed.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let (all, _) = padded(header, rows);
    all.iter()
        .map(|row| row.join("  ").trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The same table as Markdown: `| a | b |`, a separator row, then the rows.
pub fn markdown(header: &[&str], rows: &[Vec<String>]) -> String {
    let (all, widths) = padded(header, rows);
    let mut lines: Vec<String> = all
        .iter()
        .map(|row| format!("| {} |", row.join(" | ")))
        .collect();
    let rule = widths
        .iter()
        .map(|w| "-".repeat(w + 2))
        .collect::<Vec<_>>()
        .join("|");
    lines.insert(1, format!("|{rule}|"));
    lines.join("\n")
}

/// Header and rows with every cell padded to its column's width, and the widths.
fn padded(header: &[&str], rows: &[Vec<String>]) -> (Vec<Vec<String>>, Vec<usize>) {
    let mut all: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    all.extend(rows.iter().cloned());
    let columns = header.len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            all.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let all = all
        .iter()
        .map(|row| {
            (0..columns)
                .map(|i| {
                    let cell = row.get(i).map_or("", String::as_str);
                    format!("{cell:<w$}", w = widths[i])
                })
                .collect()
        })
        .collect();
    (all, widths)
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns() {
        let t = super::table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1");
        let m = super::markdown(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(m, "| A   | BB |\n|-----|----|\n| xyz | 1  |");
    }
}
