//! The spec's seccomp part: the compiled filter travels as BPF, so the
//! init never compiles a profile (the default one is compiled once, in
//! kiln's process).

use std::sync::Arc;

use super::{Reader, Writer};
use crate::error::{Error, Result};
use crate::seccomp::{Filter, Seccomp};
use crate::spec::Spec;

pub(super) fn encode(w: &mut Writer, spec: &Spec) -> Result<()> {
    match spec.seccomp.filter()? {
        None => w.u8(0),
        Some(f) => {
            w.u8(1);
            w.bytes(&f.to_bytes());
        }
    }
    w.u8(spec.no_new_privileges as u8);
    Ok(())
}

pub(super) fn decode(r: &mut Reader<'_>) -> Result<(Seccomp, bool)> {
    let seccomp = match r.u8()? {
        0 => Seccomp::Unconfined,
        1 => Seccomp::Filter(Arc::new(Filter::from_bytes(r.bytes()?)?)),
        t => return Err(Error::Codec(format!("unknown seccomp kind {t}"))),
    };
    let nnp = match r.u8()? {
        0 => false,
        1 => true,
        t => return Err(Error::Codec(format!("bad no_new_privileges {t}"))),
    };
    Ok((seccomp, nnp))
}
