//! The canonical encoding of what a cache key holds. Keys must mean the
//! same thing to every kiln that reads them (another version, another
//! runner sharing the cache), so nothing here comes from a `Debug`
//! printout or a serializer's choices: every instruction kind writes its
//! fields itself, in a fixed order, each one tagged and length-prefixed,
//! so no two different steps encode alike. A change of what a key means
//! must bump [`SCHEME`]; the golden tests below fail on an accidental one.

use kiln_dockerfile::instructions::{
    CommandLine, FileOp, Healthcheck, Instruction, KeyValue, Mount, MountType, Network, Run,
    Security, Sharing,
};

/// The scheme every root key starts from: keys of another scheme (older
/// kilns, whose keys came from `Debug` text) never match, so their
/// entries are plain misses.
pub const SCHEME: &str = "kiln-cache-v2";

/// A canonical byte string under construction.
#[derive(Default)]
pub struct Enc(Vec<u8>);

impl Enc {
    pub fn new(kind: &str) -> Enc {
        let mut e = Enc::default();
        e.str(kind);
        e
    }

    /// The bytes written (the encoder is left empty).
    pub fn bytes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }

    /// Type byte, then the length, then the bytes.
    fn item(&mut self, ty: u8, bytes: &[u8]) -> &mut Enc {
        self.0.push(ty);
        self.0
            .extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.0.extend_from_slice(bytes);
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Enc {
        self.item(b's', s.as_bytes())
    }

    pub fn opt(&mut self, s: Option<&str>) -> &mut Enc {
        match s {
            Some(s) => self.str(s),
            None => self.item(b'n', &[]),
        }
    }

    pub fn flag(&mut self, b: bool) -> &mut Enc {
        self.item(b'b', &[u8::from(b)])
    }

    pub fn num(&mut self, n: Option<i64>) -> &mut Enc {
        match n {
            Some(n) => self.item(b'i', &n.to_le_bytes()),
            None => self.item(b'n', &[]),
        }
    }

    /// A list: its length, then each element as `each` writes it.
    pub fn list<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Enc, &T)) -> &mut Enc {
        self.item(b'l', &(items.len() as u64).to_le_bytes());
        for i in items {
            each(self, i);
        }
        self
    }

    pub fn strs(&mut self, items: &[String]) -> &mut Enc {
        self.list(items, |e, s| {
            e.str(s);
        })
    }
}

/// The key of a stage's starting point: the scheme, the platform, what
/// it starts from (`scratch`, or `image` and its manifest digest).
pub fn root_key(platform: &str, kind: &str, id: &str) -> String {
    let mut e = Enc::new(SCHEME);
    e.str(platform).str(kind).str(id);
    sha256_hex(&e.bytes())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A step's key, part by part: each part a name (`instruction`,
/// `env:NAME`, `sources`…) and the digest of its canonical bytes. The key
/// is made of the names and digests, so the entry can keep them (values
/// of args and secrets never stored) and a miss can say which differed.
#[derive(Default)]
pub struct Parts(pub Vec<(String, String)>);

impl Parts {
    pub fn add(&mut self, name: impl Into<String>, bytes: &[u8]) {
        self.0.push((name.into(), sha256_hex(bytes)));
    }

    /// The key of this step on the state keyed `parent`.
    pub fn key(&self, parent: &str) -> String {
        let mut e = Enc::new("step");
        e.str(parent);
        e.list(&self.0, |e, (name, digest)| {
            e.str(name).str(digest);
        });
        sha256_hex(&e.bytes())
    }
}

/// The instruction's parts of the key: ENV and LABEL give one part per
/// variable (so a miss names it) besides their names in order; any
/// other instruction is one part.
pub fn instruction_parts(i: &Instruction, parts: &mut Parts) {
    let (prefix, kv) = match i {
        Instruction::Env(kv) => ("env:", kv),
        Instruction::Label(kv) => ("label:", kv),
        _ => return parts.add("instruction", &instruction(i)),
    };
    let mut e = Enc::new(i.keyword());
    e.list(kv, |e, kv| {
        e.str(&kv.key);
    });
    parts.add("instruction", &e.bytes());
    for kv in kv {
        parts.add(format!("{prefix}{}", kv.key), kv.value.as_bytes());
    }
}

/// The instruction as its key holds it (expanded, with the engine's
/// key-only adjustments already made).
pub fn instruction(i: &Instruction) -> Vec<u8> {
    let mut e = Enc::new(i.keyword());
    match i {
        Instruction::Run(run) => run_fields(&mut e, run),
        Instruction::Cmd(c) | Instruction::Entrypoint(c) => command_line(&mut e, c),
        Instruction::Shell(w) | Instruction::Expose(w) | Instruction::Volume(w) => {
            e.strs(w);
        }
        Instruction::Label(kv) | Instruction::Env(kv) => key_values(&mut e, kv),
        Instruction::Maintainer(s)
        | Instruction::User(s)
        | Instruction::Workdir(s)
        | Instruction::StopSignal(s) => {
            e.str(s);
        }
        Instruction::Copy(op) | Instruction::Add(op) => file_op(&mut e, op),
        Instruction::Arg(decls) => {
            e.list(decls, |e, d| {
                e.str(&d.name).opt(d.default.as_deref());
            });
        }
        // The trigger is stored in the image config as written.
        Instruction::Onbuild(o) => {
            e.str(&o.expression);
        }
        Instruction::Healthcheck(Healthcheck::None) => {
            e.str("NONE");
        }
        Instruction::Healthcheck(Healthcheck::Cmd(h)) => {
            e.str("CMD");
            command_line(&mut e, &h.test);
            e.num(h.interval)
                .num(h.timeout)
                .num(h.start_period)
                .num(h.start_interval)
                .num(h.retries.map(i64::from));
        }
    }
    e.bytes()
}

fn command_line(e: &mut Enc, c: &CommandLine) {
    match c {
        CommandLine::Exec(words) => e.str("exec").strs(words),
        CommandLine::Shell(line) => e.str("shell").str(line),
    };
}

fn key_values(e: &mut Enc, kv: &[KeyValue]) {
    e.list(kv, |e, kv| {
        e.str(&kv.key).str(&kv.value);
    });
}

fn run_fields(e: &mut Enc, run: &Run) {
    command_line(e, &run.command);
    e.list(&run.heredocs, |e, d| {
        e.str(&d.name)
            .str(&d.content)
            .flag(d.expand)
            .flag(d.chomp)
            .num(Some(i64::from(d.fd)));
    });
    e.list(&run.mounts, mount);
    e.opt(run.network.map(network));
    e.opt(run.security.map(|s| match s {
        Security::Sandbox => "sandbox",
        Security::Insecure => "insecure",
    }));
}

pub fn network(n: Network) -> &'static str {
    match n {
        Network::Default => "default",
        Network::None => "none",
        Network::Host => "host",
    }
}

fn mount(e: &mut Enc, m: &Mount) {
    e.str(match m.kind {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    });
    e.opt(m.from.as_deref())
        .opt(m.source.as_deref())
        .opt(m.target.as_deref())
        .flag(m.read_only)
        .opt(m.id.as_deref())
        .opt(m.sharing.map(|s| match s {
            Sharing::Shared => "shared",
            Sharing::Private => "private",
            Sharing::Locked => "locked",
        }))
        .num(m.mode.map(i64::from))
        .num(m.uid.map(i64::from))
        .num(m.gid.map(i64::from))
        .num(m.size.map(|s| s as i64))
        .flag(m.required)
        .opt(m.env.as_deref());
}

fn file_op(e: &mut Enc, op: &FileOp) {
    e.strs(&op.sources);
    e.list(&op.inline, |e, s| {
        e.str(&s.name).str(&s.content).flag(s.expand);
    });
    e.str(&op.dest)
        .flag(op.json)
        .opt(op.from.as_deref())
        .opt(op.chown.as_deref())
        .opt(op.chmod.as_deref())
        .flag(op.link)
        .flag(op.parents)
        .strs(&op.exclude)
        .opt(op.checksum.as_deref())
        .flag(op.keep_git_dir)
        .num(op.unpack.map(i64::from));
}

#[cfg(test)]
mod tests;
