//! The restore plan in words: after rows of the live database were entered, deleted and
//! changed, the plan says what a restore would do to each table, with signed differences and
//! the rows entered, deleted and changed since the snapshot, on a phone without scrolling
//! sideways and on a desktop.

use super::*;

/// What on the page reaches past the window's width, or scrolls sideways (empty: it fits).
pub(super) const OVERFLOW: &str = r##"
const out = [], w = document.documentElement.clientWidth;
if (document.documentElement.scrollWidth > w) out.push(`the page is ${document.documentElement.scrollWidth}px wide`);
for (const el of document.body.querySelectorAll("*")) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  if (r.left < -0.5 || r.right > w + 0.5) out.push(`${el.tagName} ${el.id} spans ${Math.round(r.left)}..${Math.round(r.right)}px`);
  if (/auto|scroll/.test(getComputedStyle(el).overflowX) && el.scrollWidth > el.clientWidth + 1)
    out.push(`${el.tagName} ${el.id} scrolls sideways`);
}
return out.slice(0, 12);
"##;

/// The text of the cells captioned `arguments[1]` in the plan's row of table `arguments[0]`,
/// with whether each is inside the window: `[[text, inside], ...]`.
const CELLS: &str = r##"
const [name, labels] = arguments, w = document.documentElement.clientWidth;
const row = [...document.querySelectorAll("#plan-tables tbody tr")]
  .find((tr) => tr.querySelector("td[data-label=Table]").textContent.trim() === name);
if (!row) return null;
return labels.map((label) => {
  const td = row.querySelector(`td[data-label="${label}"]`);
  if (!td) return [null, false];
  const r = td.getBoundingClientRect();
  return [td.textContent.trim(), r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= w];
});
"##;

/// Whether the element `arguments[0]` (a CSS selector) is shown whole inside the window.
const INSIDE: &str = r##"
const el = document.querySelector(arguments[0]), w = document.documentElement.clientWidth;
if (!el) return false;
const r = el.getBoundingClientRect();
return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= w;
"##;

/// Asserts that the plan's row of `table` reads `want` (rows now, in the snapshot, the change
/// on restore, entered, deleted and changed since), every cell on the screen `width` px wide.
pub(super) fn assert_plan_row(b: &Browser, width: u32, table: &str, want: &[impl AsRef<str>]) {
    let labels = [
        "Rows now",
        "In snapshot",
        "On restore",
        "Entered",
        "Deleted",
        "Changed",
    ];
    let cells = b.js(CELLS, json!([table, labels]));
    let cells: Vec<(String, bool)> = serde_json::from_value(cells.clone())
        .unwrap_or_else(|e| panic!("{width} px, {table}: {e}: {cells}"));
    let texts: Vec<&str> = cells.iter().map(|(t, _)| t.as_str()).collect();
    let want: Vec<&str> = want.iter().map(AsRef::as_ref).collect();
    assert_eq!(texts, want, "{width} px: the plan's row of {table}");
    assert!(
        cells.iter().all(|(_, inside)| *inside),
        "{width} px: cells of {table} off the screen: {cells:?}"
    );
}

/// The admin (logged in) changes the live database after the manual snapshot: two genres
/// entered, invoice lines deleted, three artists renamed. The plan of restoring that snapshot
/// says so in words and signs, at 390 px and 1280 px, without sideways scrolling. The live
/// database is left as changed (later steps do not count these tables).
pub(super) fn admin_sees_what_a_restore_would_change(b: &Browser, shop: &Shop, manual_id: &str) {
    let count = |sql: &str| -> i64 {
        let n = shop.sql(sql);
        n.parse().unwrap_or_else(|_| panic!("{sql}: {n:?}"))
    };
    let deleted = count(&format!(
        "SELECT count(*) FROM {TABLE} WHERE InvoiceId > 350"
    ));
    assert!(deleted > 1, "no invoice lines to delete");
    let genres = count("SELECT count(*) FROM Genre");
    let lines = count(&format!("SELECT count(*) FROM {TABLE}"));
    let artists = count("SELECT count(*) FROM Artist");
    shop.sql(&format!(
        "INSERT INTO Genre(Name) VALUES ('Polka'), ('Ska');
         DELETE FROM {TABLE} WHERE InvoiceId > 350;
         UPDATE Artist SET Name = Name || ' (live)' WHERE ArtistId <= 3;"
    ));

    let entered = "2 rows of Genre entered since the snapshot will be lost.".to_string();
    let back = format!("{deleted} rows of {TABLE} deleted since the snapshot will come back.");
    let reverted =
        "3 rows of Artist changed since the snapshot will go back to their old values.".to_string();
    for (width, height) in [(390, 844), (1280, 900)] {
        b.resize(width, height);
        b.goto(&format!("/restore?source=shop&snapshot={manual_id}"));
        b.find("#plan");
        let summary = b.text(&b.find("#plan-summary"));
        for part in [
            "Restoring loses 2 rows of Genre entered since ".to_string(),
            format!("brings back {deleted} deleted rows of {TABLE}"),
            "and reverts 3 changed rows of Artist.".to_string(),
        ] {
            assert!(
                summary.contains(&part),
                "{width} px: {part:?} not in {summary:?}"
            );
        }
        let words: Vec<String> = b
            .find_all("#plan-words li")
            .iter()
            .map(|li| b.text(li))
            .collect();
        for sentence in [&entered, &back, &reverted] {
            assert!(
                words.contains(sentence),
                "{width} px: {sentence:?} not in {words:#?}"
            );
        }
        assert!(
            b.js(INSIDE, json!(["#plan-words"])) == json!(true)
                && b.js(INSIDE, json!(["#plan-summary"])) == json!(true),
            "{width} px: the words are not all on the screen"
        );
        let after_lines = lines - deleted;
        for (table, want) in [
            (
                "Genre",
                [genres + 2, genres, -2, 2, 0, 0].map(|n| n.to_string()),
            ),
            (
                TABLE,
                [after_lines, lines, deleted, 0, deleted, 0].map(|n| n.to_string()),
            ),
            (
                "Artist",
                [artists, artists, 0, 0, 0, 3].map(|n| n.to_string()),
            ),
        ] {
            let mut want = want;
            // Signed as a restore changes the count: a minus sign (U+2212), a plus, or 0.
            want[2] = match want[2].parse::<i64>().expect("a number") {
                n if n > 0 => format!("+{n}"),
                n if n < 0 => format!("\u{2212}{}", -n),
                _ => "0".into(),
            };
            assert_plan_row(b, width, table, &want);
        }
        let overflow = b.js(OVERFLOW, json!([]));
        assert_eq!(
            overflow,
            json!([]),
            "the plan scrolls sideways at {width} px"
        );
    }
    b.resize(1280, 900);
}
