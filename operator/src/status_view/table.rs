//! Aligned text tables, as `kubectl get` prints them: a header row, then one row per
//! object, each column as wide as its widest cell. A row may carry notes: lines printed
//! under it, indented (a source's errors). Cells are never cut: the last column runs as
//! long as it needs, so put long text (messages) there.

/// What an empty table prints instead of its header.
pub const NONE: &str = "(none)";

/// What a cell with no value shows.
pub const EMPTY: &str = "-";

#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Row>,
}

#[derive(Debug)]
struct Row {
    cells: Vec<String>,
    notes: Vec<String>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are empty, line breaks inside a cell become spaces.
    pub fn row(&mut self, cells: Vec<String>) {
        let cells = cells.into_iter().map(|c| one_line(&c)).collect();
        self.rows.push(Row {
            cells,
            notes: Vec::new(),
        });
    }

    /// Adds a line under the last row.
    pub fn note(&mut self, line: String) {
        if let Some(row) = self.rows.last_mut() {
            row.notes.push(one_line(&line));
        }
    }

    /// Writes the table, each line starting with `indent`; `(none)` when it has no rows.
    pub fn render(&self, indent: &str, out: &mut String) {
        if self.rows.is_empty() {
            out.push_str(indent);
            out.push_str(NONE);
            out.push('\n');
            return;
        }
        let columns = self
            .rows
            .iter()
            .map(|r| r.cells.len())
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0; columns];
        for cells in [&self.header]
            .into_iter()
            .chain(self.rows.iter().map(|r| &r.cells))
        {
            for (width, cell) in widths.iter_mut().zip(cells) {
                *width = (*width).max(cell.chars().count());
            }
        }
        line(indent, &self.header, &widths, out);
        for row in &self.rows {
            line(indent, &row.cells, &widths, out);
            for note in &row.notes {
                out.push_str(indent);
                out.push_str("  ");
                out.push_str(note);
                out.push('\n');
            }
        }
    }
}

fn line(indent: &str, cells: &[String], widths: &[usize], out: &mut String) {
    let mut text = String::from(indent);
    for (i, width) in widths.iter().enumerate() {
        let cell = cells.get(i).map(String::as_str).unwrap_or("");
        text.push_str(cell);
        if i + 1 < widths.len() {
            let pad = width - cell.chars().count() + 2;
            text.extend(std::iter::repeat_n(' ', pad));
        }
    }
    out.push_str(text.trim_end());
    out.push('\n');
}

fn one_line(text: &str) -> String {
    if text.contains(['\n', '\r']) {
        text.split(['\n', '\r'])
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(table: &Table) -> String {
        let mut out = String::new();
        table.render("  ", &mut out);
        out
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_and_the_last_is_never_cut() {
        let mut table = Table::new(&["KIND", "NAME", "MESSAGE"]);
        table.row(vec![
            "TrafficSplit".into(),
            "shop/web".into(),
            "a".repeat(300),
        ]);
        table.row(vec!["Service".into(), "x".into(), String::new()]);
        table.note("error: broken.yaml:1: unclosed bracket".into());
        let text = rendered(&table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "  KIND          NAME      MESSAGE");
        assert_eq!(
            lines[1],
            format!("  TrafficSplit  shop/web  {}", "a".repeat(300))
        );
        assert_eq!(lines[2], "  Service       x", "no trailing spaces");
        assert_eq!(lines[3], "    error: broken.yaml:1: unclosed bracket");
    }

    #[test]
    fn an_empty_table_says_none() {
        assert_eq!(rendered(&Table::new(&["KIND"])), "  (none)\n");
    }

    #[test]
    fn a_line_break_in_a_cell_keeps_the_row_on_one_line() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["one\ntwo".into(), "three".into()]);
        assert_eq!(rendered(&table), "  A        B\n  one two  three\n");
    }
}
