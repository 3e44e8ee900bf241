//! The everyday commands around builds, run as a user types them: tag,
//! history, system df, prune's filters, version, completion, man pages.

mod support;

use std::fs;
use std::path::Path;

use support::{fails, text, Case};

/// The stdout of a kiln run that must succeed.
fn ok(case: &Case, args: &[&str]) -> String {
    let out = case.kiln(args);
    assert!(out.status.success(), "kiln {args:?}:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How many layer dirs the store holds.
fn layer_dirs(case: &Case) -> usize {
    fs::read_dir(case.store().join("layers"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".json"))
        .count()
}

/// The "Total reclaimed space: X" of a prune's output.
fn reclaimed(out: &str) -> &str {
    out.lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("no total in:\n{out}"))
}

/// A Dockerfile whose RUN writes `kb` kB of random bytes to /`name`.
fn random_file(name: &str, kb: usize) -> String {
    format!("FROM BASE\nRUN head -c {kb}000 /dev/urandom > /{name}\n")
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn rmi_then_prune_frees_the_image_s_own_layers() {
    let case = Case::new("rmi-prune");
    case.dockerfile(&random_file("big", 300));
    case.build(&["-t", "app"]);
    // While the image exists its cache stays: a prune frees nothing of it.
    let kept = ok(&case, &["prune"]);
    assert_eq!(layer_dirs(&case), 2, "{kept}");
    let again = case.build(&["-t", "app"]);
    assert!(again.contains("CACHED"), "{again}");

    ok(&case, &["rmi", "app"]);
    let pruned = ok(&case, &["prune"]);
    // The RUN's layer (300 kB) goes; the base image's stays.
    assert_eq!(layer_dirs(&case), 1, "{pruned}");
    let total = reclaimed(&pruned);
    assert!(
        total.ends_with("kB") && total[..3].parse::<u32>().unwrap() >= 300,
        "{pruned}"
    );
    assert_eq!(reclaimed(&ok(&case, &["prune"])), "0B");
    // The store still builds; the step runs again.
    let rebuilt = case.build(&["-t", "app"]);
    assert!(!rebuilt.contains("CACHED"), "{rebuilt}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn prune_keep_storage_drops_the_least_recently_used_cache_first() {
    let case = Case::new("keep-storage");
    let a = random_file("a", 300);
    let b = random_file("b", 300);
    case.dockerfile(&a);
    case.build(&["-t", "a"]);
    case.dockerfile(&b);
    case.build(&["-t", "b"]);
    // Using a's cache again makes b's the least recently used.
    case.dockerfile(&a);
    case.build(&["-t", "a"]);
    ok(&case, &["rmi", "a", "b"]);

    // 600 kB of cache, 400 KiB allowed: only b's entry goes.
    let pruned = ok(&case, &["prune", "--keep-storage", "400KB"]);
    assert!(pruned.contains(" 1 layer(s)"), "{pruned}");
    let again = case.build(&["-t", "a"]);
    assert!(again.contains("CACHED"), "{again}");
    case.dockerfile(&b);
    let again = case.build(&["-t", "b"]);
    assert!(!again.contains("CACHED"), "{again}");

    let bad = fails(&case.kiln(&["prune", "--keep-storage", "lots"]));
    assert!(bad.contains("--keep-storage lots"), "{bad}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn prune_filter_until_spares_recently_used_cache() {
    let case = Case::new("until");
    case.dockerfile(&random_file("u", 100));
    case.build(&["-t", "u"]);
    ok(&case, &["rmi", "u"]);
    // Used a moment ago: not older than an hour, so kept.
    let spared = ok(&case, &["prune", "--filter", "until=1h"]);
    assert!(spared.contains(" 0 cache entries"), "{spared}");
    let again = case.build(&["-t", "u"]);
    assert!(again.contains("CACHED"), "{again}");

    let bad = fails(&case.kiln(&["prune", "--filter", "until=3days"]));
    assert!(bad.contains("until=3days") && bad.contains("unit"), "{bad}");
    let bad = fails(&case.kiln(&["prune", "--filter", "label=x"]));
    assert!(bad.contains("until=DURATION"), "{bad}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn tag_gives_an_image_more_names() {
    let case = Case::new("tag");
    case.dockerfile("FROM BASE\nLABEL x=1\n");
    case.build(&["-t", "app"]);
    ok(&case, &["tag", "app", "app:v2", "example.com/team/app:1"]);
    let id = ok(&case, &["images", "-q"]);
    let images = ok(&case, &["images"]);
    for name in [
        "localhost/app:latest",
        "localhost/app:v2",
        "example.com/team/app:1",
    ] {
        let line = images.lines().find(|l| l.starts_with(name));
        let line = line.unwrap_or_else(|| panic!("no {name}:\n{images}"));
        assert!(line.contains(id.lines().last().unwrap()), "{images}");
    }
    // Removing one name leaves the others.
    ok(&case, &["rmi", "app:v2"]);
    assert_eq!(
        case.inspect("example.com/team/app:1")["Config"]["Labels"]["x"],
        "1"
    );

    let missing = fails(&case.kiln(&["tag", "nosuch", "x"]));
    assert!(missing.contains("nosuch"), "{missing}");
    let bad = fails(&case.kiln(&["tag", "app", "Bad Name"]));
    assert!(bad.contains("Bad Name"), "{bad}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn history_lists_each_step_newest_first() {
    let case = Case::new("history");
    let long = "a-command-line-much-longer-than-forty-five-characters-end";
    case.dockerfile(&format!("FROM BASE\nENV A=1\nRUN echo {long} > /f\n"));
    case.build(&["-t", "hist"]);
    let id = case.inspect("hist")["Id"].as_str().unwrap().to_string();

    let table = ok(&case, &["history", "hist"]);
    let lines: Vec<&str> = table.lines().collect();
    for col in ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"] {
        assert!(lines[0].contains(col), "{table}");
    }
    assert!(
        lines[1].starts_with(&id["sha256:".len()..][..12]),
        "{table}"
    );
    assert!(
        lines[1].contains("RUN") && lines[1].contains('…'),
        "{table}"
    );
    assert!(!table.contains(long), "{table}");
    assert!(
        lines[2].starts_with("<missing>") && lines[2].contains("ENV A=1"),
        "{table}"
    );
    assert!(lines[2].contains("0 B"), "{table}");

    let full = ok(&case, &["history", "--no-trunc", "hist"]);
    assert!(full.contains(long) && full.contains(&id), "{full}");

    let json = ok(&case, &["history", "--format", "json", "hist"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows[0]["ID"], id.as_str());
    assert!(rows[0]["CreatedBy"].as_str().unwrap().contains(long));
    assert!(rows[0]["SizeBytes"].as_u64().unwrap() > 0);
    assert_eq!(rows[1]["SizeBytes"], 0);
    assert!(rows[1]["CreatedSince"].as_str().unwrap().ends_with(" ago"));

    let bad = fails(&case.kiln(&["history", "--format", "yaml", "hist"]));
    assert!(bad.contains("--format yaml"), "{bad}");
}

/// The RECLAIMABLE column of a `system df` row.
fn df_reclaimable(df: &str, row: &str) -> String {
    let line = df.lines().find(|l| l.starts_with(row));
    let line = line.unwrap_or_else(|| panic!("no {row} row:\n{df}"));
    line.split_whitespace()
        .nth(row.split(' ').count() + 3)
        .unwrap()
        .to_string()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn system_df_shows_what_prune_would_free() {
    let case = Case::new("df");
    case.dockerfile(&random_file("d", 200));
    case.build(&["-t", "df"]);
    let df = ok(&case, &["system", "df"]);
    for row in ["TYPE", "Images", "Build Cache", "Cache Mounts"] {
        assert!(df.contains(row), "{df}");
    }
    assert_eq!(df_reclaimable(&df, "Build Cache"), "0B", "{df}");

    ok(&case, &["rmi", "df"]);
    let df = ok(&case, &["system", "df"]);
    let cache = df_reclaimable(&df, "Build Cache");
    assert!(
        cache.ends_with("kB") && cache[..3].parse::<u32>().unwrap() >= 200,
        "{df}"
    );
    let verbose = ok(&case, &["system", "df", "-v"]);
    assert!(
        verbose.contains("Build cache usage") && verbose.contains("false"),
        "{verbose}"
    );

    ok(&case, &["prune"]);
    let df = ok(&case, &["system", "df"]);
    assert_eq!(df_reclaimable(&df, "Build Cache"), "0B", "{df}");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn version_names_the_commit_without_a_store() {
    let case = Case::new("version");
    let v = ok(&case, &["version"]);
    assert!(
        v.contains(&format!("kiln {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    let commit = v
        .lines()
        .find_map(|l| l.strip_prefix("commit:"))
        .unwrap()
        .trim();
    // Built from a git checkout: the full commit id.
    assert!(
        commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
        "{v}"
    );
    assert!(v.contains("rustc") && v.contains("platform: linux/"), "{v}");
    assert!(!case.store().exists(), "version opened a store");
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn completion_scripts_for_each_shell() {
    let case = Case::new("completion");
    let bash = ok(&case, &["completion", "bash"]);
    let script = case.path("kiln.bash");
    fs::write(&script, &bash).unwrap();
    // What `source <(kiln completion bash)` in .bashrc does.
    let loaded = support::tool(
        "bash",
        &[
            "-c",
            &format!("source {} && complete -p kiln", script.display()),
        ],
    );
    assert!(loaded.contains("kiln"), "{loaded}");
    assert!(
        bash.contains("history") && bash.contains("--keep-storage"),
        "{bash}"
    );
    assert!(ok(&case, &["completion", "zsh"]).starts_with("#compdef kiln"));
    assert!(ok(&case, &["completion", "fish"]).contains("complete -c kiln"));
    let bad = fails(&case.kiln(&["completion", "tcsh"]));
    assert!(bad.contains("tcsh") && bad.contains("bash"), "{bad}");
}

/// The subcommands `kiln --help` lists.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "rootless: run by scripts/test-build.sh"]
fn man_pages_cover_every_command() {
    let case = Case::new("man");
    let dir = case.path("man");
    let out = case.kiln(&["man", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let commands = listed_commands(&ok(&case, &["--help"]));
    assert!(
        commands.len() > 10 && commands.contains(&"tag".into()),
        "{commands:?}"
    );
    let page = |name: &str| fs::read_to_string(dir.join(format!("{name}.1")));
    for c in commands
        .iter()
        .map(|c| format!("kiln-{c}"))
        .chain(["kiln".into()])
    {
        let text = page(&c).unwrap_or_else(|e| panic!("{c}.1: {e}"));
        assert!(text.contains(".TH"), "{c}.1 is no man page");
    }
    // Nested commands too, with their flags.
    assert!(page("kiln-system-df").unwrap().contains("verbose"));
    assert!(page("kiln-prune").unwrap().contains("keep\\-storage"));
    // `man` renders them.
    let rendered = support::tool(
        "man",
        &["-l", "-P", "cat", dir.join("kiln-tag.1").to_str().unwrap()],
    );
    assert!(
        Path::new(&dir).join("kiln.1").exists() && rendered.contains("TARGET"),
        "{rendered}"
    );
}
