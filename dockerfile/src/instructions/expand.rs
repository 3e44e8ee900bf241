//! Word expansion of one instruction, in the places BuildKit expands: the
//! arguments of ADD COPY ENV EXPOSE LABEL STOPSIGNAL USER VOLUME WORKDIR
//! ARG, the flags of COPY/ADD (`--chown --chmod --checksum --exclude`; a
//! `--from` must be literal, as in BuildKit) and the `RUN --mount` values — never the text of RUN, CMD,
//! ENTRYPOINT, SHELL or HEALTHCHECK, which the shell sees as written. An
//! ONBUILD trigger is expanded when it runs, in the child build.
//!
//! All words are expanded against one environment: the one from before the
//! line, so `ENV A=1 B=$A` sees the old A, as BuildKit does.

use std::collections::BTreeSet;

use super::{ArgDecl, FileOp, Instruction, KeyValue, Mount, Run};
use crate::shell::{Env, Lexer, ShellError};

/// An instruction with its words expanded, and the variables it used that
/// had no value (for the `UndefinedVar` check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expanded {
    pub instruction: Instruction,
    pub unmatched: BTreeSet<String>,
}

/// Why an expansion failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpandError {
    pub message: String,
    /// A `${V:?}` / `${V?}` met an unset variable. Before a base image is
    /// pulled its ENV is unknown, so the caller may not trust this yet.
    pub unset_variable: bool,
}

/// Expands what BuildKit expands. Errors name the word that failed.
pub fn expand(
    instruction: &Instruction,
    lexer: &Lexer,
    env: &dyn Env,
) -> Result<Expanded, ExpandError> {
    let mut x = Words {
        lexer,
        env,
        unmatched: BTreeSet::new(),
        unset_variable: std::cell::Cell::new(false),
    };
    expand_with(instruction, &mut x).map_err(|message| ExpandError {
        message,
        unset_variable: x.unset_variable.get(),
    })
}

fn expand_with(instruction: &Instruction, x: &mut Words) -> Result<Expanded, String> {
    let instruction = match instruction {
        Instruction::Env(pairs) => Instruction::Env(x.pairs(pairs)?),
        Instruction::Label(pairs) => Instruction::Label(x.pairs(pairs)?),
        Instruction::Arg(decls) => Instruction::Arg(
            decls
                .iter()
                .map(|d| {
                    Ok(ArgDecl {
                        name: x.word(&d.name)?,
                        default: x.opt(&d.default)?,
                    })
                })
                .collect::<Result<_, String>>()?,
        ),
        Instruction::Expose(ports) => Instruction::Expose(x.split(ports)?),
        Instruction::Volume(vols) => Instruction::Volume(x.list(vols)?),
        Instruction::User(u) => Instruction::User(x.word(u)?),
        Instruction::Workdir(w) => Instruction::Workdir(x.word(w)?),
        Instruction::StopSignal(s) => Instruction::StopSignal(x.word(s)?),
        Instruction::Copy(op) => Instruction::Copy(x.file_op(op)?),
        Instruction::Add(op) => Instruction::Add(x.file_op(op)?),
        Instruction::Run(run) => Instruction::Run(x.run(run)?),
        other => other.clone(),
    };
    Ok(Expanded {
        instruction,
        unmatched: std::mem::take(&mut x.unmatched),
    })
}

struct Words<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    unmatched: BTreeSet<String>,
    unset_variable: std::cell::Cell<bool>,
}

impl Words<'_> {
    fn fail(&self, word: &str, e: &ShellError) -> String {
        if e.is_unset_variable() {
            self.unset_variable.set(true);
        }
        format!("{word}: {e}")
    }

    fn word(&mut self, word: &str) -> Result<String, String> {
        let e = self
            .lexer
            .process_word_with_matches(word, self.env)
            .map_err(|e| self.fail(word, &e))?;
        self.unmatched.extend(e.unmatched);
        Ok(e.value)
    }

    fn opt(&mut self, word: &Option<String>) -> Result<Option<String>, String> {
        word.as_deref().map(|w| self.word(w)).transpose()
    }

    fn list(&mut self, words: &[String]) -> Result<Vec<String>, String> {
        words.iter().map(|w| self.word(w)).collect()
    }

    /// Expands each word and splits the results at unquoted whitespace,
    /// as BuildKit's `ProcessWords` does for EXPOSE.
    fn split(&mut self, words: &[String]) -> Result<Vec<String>, String> {
        let mut out = Vec::with_capacity(words.len());
        for word in words {
            let (split, e) = self
                .lexer
                .process_words_with_matches(word, self.env)
                .map_err(|e| self.fail(word, &e))?;
            self.unmatched.extend(e.unmatched);
            out.extend(split);
        }
        Ok(out)
    }

    fn pairs(&mut self, pairs: &[KeyValue]) -> Result<Vec<KeyValue>, String> {
        pairs
            .iter()
            .map(|kv| {
                Ok(KeyValue {
                    key: self.word(&kv.key)?,
                    value: self.word(&kv.value)?,
                })
            })
            .collect()
    }

    fn file_op(&mut self, op: &FileOp) -> Result<FileOp, String> {
        let mut inline = op.inline.clone();
        // A heredoc body is file content: variables are substituted, but
        // quotes are kept as written.
        let mut body_lexer = self.lexer.clone();
        body_lexer.skip_process_quotes = true;
        for src in inline.iter_mut().filter(|s| s.expand) {
            src.content = body_lexer
                .process_word(&src.content, self.env)
                .map_err(|e| self.fail(&src.name, &e))?;
        }
        Ok(FileOp {
            sources: self.list(&op.sources)?,
            inline,
            dest: self.word(&op.dest)?,
            chown: self.opt(&op.chown)?,
            chmod: self.opt(&op.chmod)?,
            checksum: self.opt(&op.checksum)?,
            exclude: self.list(&op.exclude)?,
            ..op.clone()
        })
    }

    fn run(&mut self, run: &Run) -> Result<Run, String> {
        let mut mounts = Vec::with_capacity(run.mount_specs.len());
        for spec in &run.mount_specs {
            let mount = Mount::parse(spec, &|v| {
                self.lexer
                    .process_word_with_matches(v, self.env)
                    .map(|e| e.value)
                    .map_err(|e| self.fail(v, &e))
            })
            .map_err(|e| format!("--mount={spec}: {e}"))?;
            mounts.push(mount);
        }
        Ok(Run {
            mounts,
            ..run.clone()
        })
    }
}
