//! The line layer: directives, comments, continuations, heredocs.

use kiln_dockerfile::parser::parse;

fn keywords(text: &str) -> Vec<(String, String, usize, usize)> {
    parse(text)
        .unwrap()
        .nodes
        .into_iter()
        .map(|n| (n.keyword, n.rest, n.span.start, n.span.end))
        .collect()
}

#[test]
fn directives_only_at_the_top() {
    let p = parse("# syntax=docker/dockerfile:1\n# ESCAPE = `\n#check=skip=all\nFROM a\n").unwrap();
    assert_eq!(p.directives.escape, '`');
    assert_eq!(p.directives.syntax.unwrap().value, "docker/dockerfile:1");
    assert_eq!(p.directives.check.unwrap().value, "skip=all");

    // A comment ends the directive block; later "directives" are comments.
    let p = parse("# hello\n# escape=`\nFROM a\n").unwrap();
    assert_eq!(p.directives.escape, '\\');
    let p = parse("FROM a\n# escape=`\nRUN x\n").unwrap();
    assert_eq!(p.directives.escape, '\\');
    // An empty line ends it too.
    let p = parse("\n# escape=`\nFROM a\n").unwrap();
    assert_eq!(p.directives.escape, '\\');
    // Unknown directive names end the block.
    let p = parse("# foo=bar\n# escape=`\nFROM a\n").unwrap();
    assert_eq!(p.directives.escape, '\\');
}

#[test]
fn directive_errors() {
    let e = parse("# escape=x\nFROM a\n").unwrap_err();
    assert_eq!(e.span.start, 1);
    assert!(e.message.contains("invalid escape token"), "{}", e.message);
    let e = parse("# syntax=a\n# syntax=b\nFROM a\n").unwrap_err();
    assert_eq!(e.span.start, 2);
    assert!(e.message.contains("only one syntax parser directive"));
}

#[test]
fn comments_continuations_and_line_numbers() {
    let text =
        "FROM a\n\n# comment\n  RUN echo a \\\n  # inner comment\n\n    b \\\n   c\nrun   x\n";
    let k = keywords(text);
    assert_eq!(k[0], ("FROM".into(), "a".into(), 1, 1));
    assert_eq!(k[1], ("RUN".into(), "echo a     b    c".into(), 4, 8));
    assert_eq!(k[2], ("run".into(), "x".into(), 9, 9));
    let p = parse(text).unwrap();
    assert!(p.warnings.iter().any(|w| w.rule == "NoEmptyContinuation"));
}

#[test]
fn backtick_escape_and_trailing_escape_at_eof() {
    let k = keywords("# escape=`\nFROM a\nRUN dir c:\\ `\n  /w\n");
    assert_eq!(k[1].1, "dir c:\\   /w");
    let k = keywords("FROM a\nRUN echo \\");
    assert_eq!(k[1].1, "echo");
    let k = keywords("FROM a\nRUN echo \\   \t\n");
    assert_eq!(k[1].1, "echo");
}

#[test]
fn bom_crlf_and_hash_inside_lines() {
    let k = keywords("\u{feff}FROM a\r\nRUN echo '#not a comment' # nor this\r\n");
    assert_eq!(k[0].0, "FROM");
    assert_eq!(k[1].1, "echo '#not a comment' # nor this");
}

#[test]
fn flags_are_split_off() {
    let p = parse("FROM a\nCOPY --from=b --chown=\"1:1\" --link src dst\nRUN --mount=type=cache,target=/c -- --not-a-flag\n").unwrap();
    assert_eq!(p.nodes[1].flags, ["--from=b", "--chown=1:1", "--link"]);
    assert_eq!(p.nodes[1].rest, "src dst");
    assert_eq!(p.nodes[2].flags, ["--mount=type=cache,target=/c"]);
    assert_eq!(p.nodes[2].rest, "--not-a-flag");
}

#[test]
fn heredocs() {
    let text = "FROM a\nRUN <<EOF\necho hi\n  indented\nEOF\nRUN <<-EOT bash\n\t\techo tabs\n\tEOT\nCOPY <<one <<\"two\" /dest/\nfirst $X\none\nsecond $X\ntwo\nRUN echo done\n";
    let p = parse(text).unwrap();
    let run = &p.nodes[1];
    assert_eq!(run.span.start, 2);
    assert_eq!(run.span.end, 5);
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].name, "EOF");
    assert_eq!(run.heredocs[0].content, "echo hi\n  indented\n");
    assert!(run.heredocs[0].expand);

    let chomp = &p.nodes[2];
    assert!(chomp.heredocs[0].chomp);
    assert_eq!(chomp.heredocs[0].content, "\t\techo tabs\n");
    assert_eq!(chomp.heredocs[0].body(), "echo tabs\n");
    assert_eq!(chomp.rest, "<<-EOT bash");

    let copy = &p.nodes[3];
    assert_eq!(copy.heredocs.len(), 2);
    assert_eq!(copy.heredocs[0].name, "one");
    assert!(copy.heredocs[0].expand);
    assert_eq!(copy.heredocs[1].name, "two");
    assert!(
        !copy.heredocs[1].expand,
        "a quoted delimiter turns expansion off"
    );
    assert_eq!(copy.heredocs[1].content, "second $X\n");
    assert_eq!(p.nodes[4].span.start, 14);
}

#[test]
fn heredoc_markers_need_a_heredoc_instruction() {
    // ENV and LABEL take `<<` literally.
    let p = parse("FROM a\nLABEL x=<<EOF\nRUN echo\n").unwrap();
    assert_eq!(p.nodes.len(), 3);
}

#[test]
fn unterminated_heredoc() {
    let e = parse("FROM a\nRUN <<EOF\necho hi\n").unwrap_err();
    assert_eq!(e.span.start, 2);
    assert!(e.message.contains("unterminated heredoc"), "{}", e.message);
}

#[test]
fn heredoc_with_fd_and_quoted_single() {
    let p = parse("FROM a\nRUN 3<<'END' cat /proc/self/fd/3\n$HOME\nEND\n").unwrap();
    let d = &p.nodes[1].heredocs[0];
    assert_eq!((d.fd, d.name.as_str(), d.expand), (3, "END", false));
}

#[test]
fn empty_files() {
    for text in ["", "\n\n", "# just a comment\n", "  \t\n\\\n"] {
        let e = parse(text).unwrap_err();
        assert!(e.message.contains("empty"), "{text:?}: {}", e.message);
    }
}
