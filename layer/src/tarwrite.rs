//! Writing tar entries byte-exactly: a ustar header, preceded by a PAX
//! extended header when something does not fit ustar (long names, xattrs,
//! large ids or sizes). We format headers ourselves (with `tar::Header` for
//! the fields and checksum) instead of using `tar::Builder`, because the
//! builder rewrites paths (drops a directory's trailing `/`), emits GNU
//! long-name entries instead of PAX, and follows symlinks by default.

use std::io::{self, Write};

use tar::{EntryType, Header};

/// What an entry is, with the type-specific data.
pub(crate) enum Kind<'a> {
    File { size: u64 },
    Dir,
    Symlink(&'a [u8]),
    Hardlink(&'a [u8]),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
}

/// One entry's metadata. `name` is the full archive path (directories end
/// with `/`).
pub(crate) struct Entry<'a> {
    pub name: &'a [u8],
    pub kind: Kind<'a>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    /// Already filtered and sorted by name.
    pub xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

const BLOCK: usize = 512;
/// Largest value of an 8-byte octal field (uid, gid): 7 digits.
const MAX_OCTAL_ID: u32 = 0o7777777;
/// Largest value of a 12-byte octal field (size): 11 digits.
const MAX_OCTAL_SIZE: u64 = 0o77777777777;
/// Name of the PAX header pseudo-entry. Fixed, so output is reproducible.
const PAX_NAME: &[u8] = b"././@PaxHeader";

/// Writes the header block(s) of `e`. The caller then writes the data (for
/// files) and [`write_padding`].
pub(crate) fn write_header<W: Write + ?Sized>(w: &mut W, e: &Entry<'_>) -> io::Result<()> {
    let mut h = Header::new_ustar();
    let mut pax: Vec<u8> = Vec::new();
    let (ty, size) = match e.kind {
        Kind::File { size } => (EntryType::Regular, size),
        Kind::Dir => (EntryType::Directory, 0),
        Kind::Symlink(_) => (EntryType::Symlink, 0),
        Kind::Hardlink(_) => (EntryType::Link, 0),
        Kind::Char(..) => (EntryType::Char, 0),
        Kind::Block(..) => (EntryType::Block, 0),
        Kind::Fifo => (EntryType::Fifo, 0),
    };
    h.set_entry_type(ty);
    if !set_ustar_name(&mut h, e.name) {
        pax_record(&mut pax, b"path", e.name);
    }
    if let Kind::Symlink(target) | Kind::Hardlink(target) = e.kind {
        if !set_field(&mut h.as_old_mut().linkname, target) {
            pax_record(&mut pax, b"linkpath", target);
        }
    }
    if size > MAX_OCTAL_SIZE {
        pax_record(&mut pax, b"size", size.to_string().as_bytes());
    }
    if e.uid > MAX_OCTAL_ID {
        pax_record(&mut pax, b"uid", e.uid.to_string().as_bytes());
    }
    if e.gid > MAX_OCTAL_ID {
        pax_record(&mut pax, b"gid", e.gid.to_string().as_bytes());
    }
    for (name, value) in e.xattrs {
        let key = [b"SCHILY.xattr.".as_slice(), name].concat();
        pax_record(&mut pax, &key, value);
    }
    // tar::Header falls back to base-256 for values too big for octal;
    // readers that know PAX take the records above instead.
    h.set_size(size);
    h.set_mode(e.mode & 0o7777);
    h.set_uid(u64::from(e.uid));
    h.set_gid(u64::from(e.gid));
    h.set_mtime(e.mtime);
    let (major, minor) = match e.kind {
        Kind::Char(ma, mi) | Kind::Block(ma, mi) => (ma, mi),
        _ => (0, 0),
    };
    h.set_device_major(major)?;
    h.set_device_minor(minor)?;
    h.set_cksum();
    if !pax.is_empty() {
        write_pax_header(w, &pax)?;
    }
    w.write_all(h.as_bytes())
}

/// Pads entry data of `size` bytes to the next 512-byte block.
pub(crate) fn write_padding<W: Write + ?Sized>(w: &mut W, size: u64) -> io::Result<()> {
    let rem = (size % BLOCK as u64) as usize;
    if rem != 0 {
        w.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
    }
    Ok(())
}

/// The end-of-archive marker: two zero blocks (as Go's archive/tar writes
/// it, without padding to a 10 KiB record).
pub(crate) fn write_end<W: Write + ?Sized>(w: &mut W) -> io::Result<()> {
    w.write_all(&[0u8; 2 * BLOCK])
}

fn write_pax_header<W: Write + ?Sized>(w: &mut W, records: &[u8]) -> io::Result<()> {
    let mut h = Header::new_ustar();
    h.set_entry_type(EntryType::XHeader);
    set_field(&mut h.as_old_mut().name, PAX_NAME);
    h.set_size(records.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_device_major(0)?;
    h.set_device_minor(0)?;
    h.set_cksum();
    w.write_all(h.as_bytes())?;
    w.write_all(records)?;
    write_padding(w, records.len() as u64)
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts
/// the whole record including its own digits.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Puts `name` in the ustar name field, or split across prefix and name at
/// a `/`. Returns false (leaving a truncated name) when it does not fit.
fn set_ustar_name(h: &mut Header, name: &[u8]) -> bool {
    if set_field(&mut h.as_old_mut().name, name) {
        return true;
    }
    let Some(ustar) = h.as_ustar_mut() else {
        return false;
    };
    // Split at the last '/' that leaves ≤ 100 bytes of name and ≤ 155 of
    // prefix; the name part may not be empty.
    for (i, _) in name.iter().enumerate().rev().filter(|(_, &b)| b == b'/') {
        let (prefix, rest) = (&name[..i], &name[i + 1..]);
        if rest.len() > ustar.name.len() {
            break;
        }
        if !rest.is_empty() && prefix.len() <= ustar.prefix.len() {
            set_field(&mut ustar.name, rest);
            set_field(&mut ustar.prefix, prefix);
            return true;
        }
    }
    let n = ustar.name.len();
    ustar.name.copy_from_slice(&name[..n]);
    false
}

/// Copies `value` into a NUL-padded field if it fits (NUL-terminated or
/// exactly full, as ustar allows). Returns false if it does not.
fn set_field(field: &mut [u8], value: &[u8]) -> bool {
    if value.len() > field.len() || value.contains(&0) {
        return false;
    }
    field.fill(0);
    field[..value.len()].copy_from_slice(value);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"x");
        assert_eq!(v, b"9 path=x\n");
        let mut v = Vec::new();
        let value = vec![b'a'; 95]; // 95 + 4 + 3 = 102, + 3 digits = 105
        pax_record(&mut v, b"path", &value);
        assert!(v.starts_with(b"105 "));
        assert_eq!(v.len(), 105);
    }

    #[test]
    fn long_names_go_to_pax_and_read_back() {
        let long: Vec<u8> = [b"d/".repeat(150).as_slice(), b"file"].concat();
        let e = Entry {
            name: &long,
            kind: Kind::File { size: 3 },
            mode: 0o644,
            uid: 3_000_000,
            gid: 5,
            mtime: 7,
            xattrs: &[(b"user.k".to_vec(), b"v\0bin".to_vec())],
        };
        let mut buf = Vec::new();
        write_header(&mut buf, &e).unwrap();
        buf.extend_from_slice(b"abc");
        write_padding(&mut buf, 3).unwrap();
        write_end(&mut buf).unwrap();
        let mut ar = tar::Archive::new(&buf[..]);
        let mut entries = ar.entries().unwrap();
        let mut ent = entries.next().unwrap().unwrap();
        assert_eq!(&*ent.path_bytes(), &long[..]);
        assert_eq!(ent.header().uid().unwrap(), 3_000_000);
        let exts: Vec<_> = ent
            .pax_extensions()
            .unwrap()
            .unwrap()
            .map(|x| x.unwrap().value_bytes().to_vec())
            .collect();
        assert!(exts.contains(&b"v\0bin".to_vec()));
        assert!(entries.next().is_none());
    }
}
