//! Texts that go into the repository have limits (backstop_format::limits): a description,
//! ticket or tag over them is refused with exit 2 before anything is stored.

mod common;

use std::fs;

use common::*;

#[test]
fn a_description_over_the_limit_is_refused_with_exit_2() {
    let sb = Sandbox::plain();
    let file = sb.p("prices.txt");
    fs::write(&file, "apples 2.10\n").unwrap();
    // 100 KiB: as long as one argument may be on Linux (128 KiB), far over the 4 KiB limit.
    let long = "x".repeat(100 * 1024);
    let o = sb
        .run(&["backup", file.to_str().unwrap(), "-m", &long])
        .code(2);
    assert!(
        o.stderr
            .contains("description is 102400 bytes long; at most 4096"),
        "{o:#?}"
    );
    let o = sb
        .run(&[
            "backup",
            file.to_str().unwrap(),
            "--ticket",
            &"t".repeat(300),
        ])
        .code(2);
    assert!(o.stderr.contains("ticket is 300 bytes"), "{o:#?}");
    assert!(
        sb.snapshots().is_empty(),
        "a refused backup leaves no snapshot"
    );

    // A description of 1.5 MB from the config file is refused the same way.
    let config = sb.p("backstop.toml");
    fs::write(
        &config,
        format!(
            "repository = \"repo\"\n[sources.prices]\npath = \"prices.txt\"\ndescription = \"{}\"\n",
            "d".repeat(1_500_000)
        ),
    )
    .unwrap();
    let mut c = sb.bare();
    c.args([
        "--config",
        config.to_str().unwrap(),
        "backup",
        "--source",
        "prices",
    ]);
    let o = run(c).code(2);
    assert!(o.stderr.contains("description is 1500000 bytes"), "{o:#?}");
    assert!(sb.snapshots().is_empty());

    // At the limit it is accepted.
    sb.backup(&[&file], &["-m", &"x".repeat(4096)]);
    assert_eq!(sb.snapshots().len(), 1);
}
