//! A small length-prefixed binary encoding of [`Spec`] (without stdio) for
//! the trip from kiln to the sandbox init through a memfd. Decoding checks
//! every length, so a truncated or garbage buffer is a typed error.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::spec::{Mount, Network, Rlimit, Spec, User};

const MAGIC: &[u8; 4] = b"KSB1";

mod seccomp;

pub(super) struct Writer(Vec<u8>);

impl Writer {
    pub(super) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn list<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.u32(items.len() as u32);
        for i in items {
            f(self, i);
        }
    }
}

pub(super) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::Codec("truncated spec".into()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let lo = self.u32()? as u64;
        let hi = self.u32()? as u64;
        Ok(lo | (hi << 32))
    }
    pub(super) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn os(&mut self) -> Result<OsString> {
        Ok(OsString::from_vec(self.bytes()?.to_vec()))
    }
    fn path(&mut self) -> Result<PathBuf> {
        Ok(PathBuf::from(self.os()?))
    }
    fn string(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| Error::Codec("non-UTF-8 string".into()))
    }
    fn list<T>(&mut self, mut f: impl FnMut(&mut Self) -> Result<T>) -> Result<Vec<T>> {
        let n = self.u32()? as usize;
        // Each item takes at least 4 bytes: refuse counts the buffer cannot hold.
        if n > self.0.len() / 4 + 1 {
            return Err(Error::Codec("list longer than the spec".into()));
        }
        (0..n).map(|_| f(self)).collect()
    }
}

/// Encode everything but stdio. Fails only when the default seccomp filter
/// cannot be compiled.
pub(crate) fn encode(spec: &Spec) -> Result<Vec<u8>> {
    let mut w = Writer(Vec::with_capacity(4096));
    w.0.extend_from_slice(MAGIC);
    w.list(&spec.lowers, |w, p| w.bytes(p.as_os_str().as_bytes()));
    w.bytes(spec.upper.as_os_str().as_bytes());
    w.bytes(spec.work.as_os_str().as_bytes());
    w.list(&spec.mounts, |w, m| match m {
        Mount::Bind {
            source,
            target,
            readonly,
        } => {
            w.u8(0);
            w.bytes(source.as_os_str().as_bytes());
            w.bytes(target.as_os_str().as_bytes());
            w.u8(*readonly as u8);
        }
        Mount::Tmpfs { target, size, mode } => {
            w.u8(1);
            w.bytes(target.as_os_str().as_bytes());
            w.u64(size.map_or(u64::MAX, |s| s));
            w.u32(*mode);
        }
    });
    w.list(&spec.env, |w, e| w.bytes(e.as_bytes()));
    w.bytes(spec.cwd.as_os_str().as_bytes());
    match &spec.user {
        User::Named(n) => {
            w.u8(0);
            w.bytes(n.as_bytes());
        }
        User::Ids { uid, gid, groups } => {
            w.u8(1);
            w.u32(*uid);
            w.u32(*gid);
            w.list(groups, |w, g| w.u32(*g));
        }
    }
    w.list(&spec.argv, |w, a| w.bytes(a.as_bytes()));
    w.u8(match spec.network {
        Network::Host => 0,
        Network::None => 1,
        Network::Private => 2,
    });
    w.bytes(spec.hostname.as_bytes());
    w.list(&spec.extra_hosts, |w, h| w.bytes(h.as_bytes()));
    w.u64(spec.shm_size.unwrap_or(u64::MAX));
    w.list(&spec.rlimits, |w, r| {
        w.u32(r.resource);
        w.u64(r.soft);
        w.u64(r.hard);
    });
    seccomp::encode(&mut w, spec)?;
    Ok(w.0)
}

/// Decode a buffer made by [`encode`]; stdio is left at its default.
pub(crate) fn decode(buf: &[u8]) -> Result<Spec> {
    let mut r = Reader(buf);
    if r.take(4)? != MAGIC {
        return Err(Error::Codec("bad magic".into()));
    }
    let lowers = r.list(|r| r.path())?;
    let upper = r.path()?;
    let work = r.path()?;
    let mounts = r.list(|r| match r.u8()? {
        0 => Ok(Mount::Bind {
            source: r.path()?,
            target: r.path()?,
            readonly: r.u8()? != 0,
        }),
        1 => Ok(Mount::Tmpfs {
            target: r.path()?,
            size: Some(r.u64()?).filter(|s| *s != u64::MAX),
            mode: r.u32()?,
        }),
        t => Err(Error::Codec(format!("unknown mount kind {t}"))),
    })?;
    let env = r.list(|r| r.os())?;
    let cwd = r.path()?;
    let user = match r.u8()? {
        0 => User::Named(r.string()?),
        1 => User::Ids {
            uid: r.u32()?,
            gid: r.u32()?,
            groups: r.list(|r| r.u32())?,
        },
        t => return Err(Error::Codec(format!("unknown user kind {t}"))),
    };
    let argv = r.list(|r| r.os())?;
    let network = match r.u8()? {
        0 => Network::Host,
        1 => Network::None,
        2 => Network::Private,
        t => return Err(Error::Codec(format!("unknown network {t}"))),
    };
    let hostname = r.string()?;
    let extra_hosts = r.list(|r| r.string())?;
    let shm_size = Some(r.u64()?).filter(|s| *s != u64::MAX);
    let rlimits = r.list(|r| {
        Ok(Rlimit {
            resource: r.u32()?,
            soft: r.u64()?,
            hard: r.u64()?,
        })
    })?;
    let (seccomp, no_new_privileges) = seccomp::decode(&mut r)?;
    if !r.0.is_empty() {
        return Err(Error::Codec("trailing bytes after spec".into()));
    }
    Ok(Spec {
        lowers,
        upper,
        work,
        mounts,
        env,
        cwd,
        user,
        argv,
        network,
        hostname,
        extra_hosts,
        shm_size,
        rlimits,
        stdio: Default::default(),
        seccomp,
        no_new_privileges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Spec {
        let mut s = Spec::new(
            vec!["/l/2".into(), "/l/1".into()],
            "/u",
            "/w",
            vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
        );
        s.mounts = vec![
            Mount::Bind {
                source: "/cache".into(),
                target: "/root/.cache".into(),
                readonly: false,
            },
            Mount::Tmpfs {
                target: "/tmp".into(),
                size: Some(1 << 20),
                mode: 0o1777,
            },
            Mount::Tmpfs {
                target: "/run".into(),
                size: None,
                mode: 0o755,
            },
        ];
        s.env = vec!["A=1".into()];
        s.user = User::Ids {
            uid: 1000,
            gid: 1000,
            groups: vec![10, 20],
        };
        s.network = Network::None;
        s.hostname = "h".into();
        s.extra_hosts = vec!["10.0.0.1 db".into()];
        s.shm_size = Some(1 << 27);
        s.rlimits = vec![Rlimit {
            resource: 7,
            soft: 100,
            hard: u64::MAX,
        }];
        s
    }

    #[test]
    fn roundtrip_keeps_every_field() {
        let s = sample();
        let d = decode(&encode(&s).unwrap()).unwrap();
        assert_eq!(d.lowers, s.lowers);
        assert_eq!((d.upper, d.work, d.cwd), (s.upper, s.work, s.cwd));
        assert_eq!(d.mounts, s.mounts);
        assert_eq!(d.env, s.env);
        assert_eq!(d.user, s.user);
        assert_eq!(d.argv, s.argv);
        assert_eq!(d.network, s.network);
        assert_eq!(d.hostname, s.hostname);
        assert_eq!(d.extra_hosts, s.extra_hosts);
        assert_eq!((d.shm_size, d.rlimits), (s.shm_size, s.rlimits));
    }

    #[test]
    fn every_truncation_and_garbage_is_an_error_not_a_panic() {
        let buf = encode(&sample()).unwrap();
        for n in 0..buf.len() {
            assert!(decode(&buf[..n]).is_err(), "prefix of {n} bytes decoded");
        }
        let mut junk = buf.clone();
        junk.push(0);
        assert!(decode(&junk).is_err());
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge).is_err());
    }
}
