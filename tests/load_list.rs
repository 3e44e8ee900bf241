//! `kiln load` of an oci-archive holding a multi-platform image: the whole
//! index is loaded, as a multi-platform image of the store.

mod support;

use support::{text, Case};

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn load_of_a_multi_platform_archive_keeps_every_platform() {
    let src = Case::new("loadlist-src");
    // COPY only: no emulator needed for arm64.
    src.dockerfile("FROM scratch\nCOPY a /a\n");
    src.file("a", "a\n");
    let archive = src.path("mp.tar");
    let dest = format!("type=oci,dest={}", archive.display());
    src.build(&[
        "--platform",
        "linux/amd64,linux/arm64",
        "-t",
        "mp:1",
        "-o",
        &dest,
    ]);

    let dst = Case::new("loadlist-dst");
    let out = dst.kiln(&["load", "-i", archive.to_str().unwrap()]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert_eq!(
        log.matches("Loaded image: localhost/mp:1").count(),
        1,
        "{log}"
    );
    let images = text(&dst.kiln(&["images"]));
    let line = images
        .lines()
        .find(|l| l.starts_with("localhost/mp:1"))
        .unwrap_or_else(|| panic!("{images}"));
    assert!(line.ends_with("linux/amd64,linux/arm64"), "{images}");
    for arch in ["amd64", "arm64"] {
        let platform = format!("linux/{arch}");
        let out = dst.kiln(&["inspect", "--platform", &platform, "mp:1"]);
        assert!(out.status.success(), "{}", text(&out));
        let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(inspect["Architecture"], arch, "{}", text(&out));
    }
    // Loading it again changes nothing (the names stay on one list).
    let out = dst.kiln(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let again = text(&dst.kiln(&["images"]));
    assert_eq!(again.matches("localhost/mp:1").count(), 1, "{again}");
}
