//! Hostile layers: metadata entries sized to exhaust memory. Sparse files
//! (holes captured as zeros, unpacked as holes) are in `sparse.rs`.

use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;

use kiln_layer::{unpack, UnpackOptions};
use tar::EntryType;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-layer-hostile-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// A ustar header block for `name` with `size` bytes of data to follow.
fn header(name: &str, kind: EntryType, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).unwrap();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(u64::from(unsafe { libc::geteuid() }));
    h.set_gid(u64::from(unsafe { libc::getegid() }));
    h.set_mtime(1);
    h.set_cksum();
    h.as_bytes().to_vec()
}

fn pad(t: &mut Vec<u8>) {
    t.resize(t.len().div_ceil(512) * 512, 0);
}

/// One PAX record `key=value`, its length prefix included.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + body.to_string().len();
    if len.to_string().len() + body != len {
        len += 1;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    assert_eq!(r.len(), len);
    r
}

/// Counts what the unpacker pulled from the stream.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// A tar whose first entry is an `kind` metadata entry of `size` bytes
/// (streamed, never held in memory by the test), then a small file.
fn huge_metadata(kind: EntryType, size: u64) -> impl Read {
    let head = header("././@meta", kind, size);
    // A PAX header of one valid comment record, so that a reader that
    // takes it whole also parses it without complaint.
    let body: Box<dyn Read> = if kind == EntryType::XHeader {
        let prefix_len = size.to_string().len() as u64 + " comment=".len() as u64;
        let value = size - prefix_len - 1;
        let mut pfx = format!("{size} comment=").into_bytes();
        assert_eq!(pfx.len() as u64, prefix_len);
        pfx.truncate(prefix_len as usize);
        Box::new(
            io::Cursor::new(pfx)
                .chain(io::repeat(b'a').take(value))
                .chain(io::Cursor::new(b"\n".to_vec())),
        )
    } else {
        Box::new(
            io::repeat(b'a')
                .take(size - 1)
                .chain(io::Cursor::new(vec![0])),
        )
    };
    let padding = (512 - size % 512) % 512;
    let mut tail = header("f", EntryType::Regular, 2);
    tail.extend_from_slice(b"hi");
    pad(&mut tail);
    tail.extend_from_slice(&[0; 1024]);
    io::Cursor::new(head)
        .chain(body)
        .chain(io::repeat(0).take(padding))
        .chain(io::Cursor::new(tail))
}

#[test]
fn oversized_pax_headers_and_long_names_are_refused_before_they_are_read() {
    let size = 8 << 20;
    for (kind, what) in [
        (EntryType::XHeader, "PAX extended header"),
        (EntryType::GNULongName, "GNU long name"),
        (EntryType::GNULongLink, "GNU long link name"),
    ] {
        let d = tmp("big-meta");
        let mut input = Counting {
            inner: huge_metadata(kind, size),
            read: 0,
        };
        let err = unpack(&mut input, &d, &UnpackOptions::default())
            .expect_err("an 8 MiB metadata entry must be refused")
            .to_string();
        assert!(
            err.contains(what) && err.contains(&size.to_string()) && err.contains("limit"),
            "{err}"
        );
        // Refused at its header: not read (nor held) whole.
        assert!(input.read < 2 << 20, "read {} bytes", input.read);
        assert!(!d.join("f").exists());
        fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn pax_headers_under_the_limit_still_work() {
    let d = tmp("ok-meta");
    let long = "d/".repeat(300) + "file";
    let mut t = Vec::new();
    let rec = pax_record("path", long.as_bytes());
    t.extend(header(
        "././@PaxHeader",
        EntryType::XHeader,
        rec.len() as u64,
    ));
    t.extend(rec);
    pad(&mut t);
    t.extend(header("short", EntryType::Regular, 3));
    t.extend(b"abc");
    pad(&mut t);
    t.extend([0; 1024]);
    unpack(&mut &t[..], &d, &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(d.join(&long)).unwrap(), b"abc");
    fs::remove_dir_all(&d).unwrap();
}

/// The limit follows the archive as the tar reader does: a PAX `size`
/// overrides the header's size field, so data that looks like an oversized
/// header is data, and the real oversized header after it is still seen.
#[test]
fn the_limit_tracks_pax_size_overrides() {
    let d = tmp("track");
    let fake = header("fake", EntryType::XHeader, 64 << 20);
    let mut t = Vec::new();
    let rec = pax_record("size", b"1024");
    t.extend(header(
        "././@PaxHeader",
        EntryType::XHeader,
        rec.len() as u64,
    ));
    t.extend(rec);
    pad(&mut t);
    t.extend(header("data", EntryType::Regular, 0)); // PAX says 1024
    t.extend(&fake);
    t.extend([b'z'; 512]);
    let ok_len = t.len();
    t.extend(header("././@LongLink", EntryType::GNULongName, 3 << 20));
    t.extend(vec![b'n'; 3 << 20]);
    t.extend([0; 1024]);

    let err = unpack(&mut &t[..], &d, &UnpackOptions::default())
        .expect_err("the second, real oversized entry must be refused")
        .to_string();
    assert!(
        err.contains("GNU long name") && err.contains("limit"),
        "{err}"
    );
    let data = fs::read(d.join("data")).unwrap();
    assert_eq!(data.len(), 1024);
    assert_eq!(&data[..512], &fake[..]);

    // The same archive ended before the long name unpacks cleanly.
    let d2 = tmp("track-ok");
    let mut ok = t[..ok_len].to_vec();
    ok.extend([0; 1024]);
    unpack(&mut &ok[..], &d2, &UnpackOptions::default()).unwrap();
    fs::remove_dir_all(&d).unwrap();
    fs::remove_dir_all(&d2).unwrap();
}

/// A GNU sparse entry whose map continues in an extension block: that
/// block (here all zeros, which would read as the end of the archive) is
/// not a header, and the oversized long name after the entry is refused.
#[test]
fn the_limit_skips_gnu_sparse_extension_blocks() {
    let d = tmp("sparse-ext");
    let mut h = tar::Header::new_gnu();
    h.set_path("holey").unwrap();
    h.set_entry_type(EntryType::GNUSparse);
    h.set_size(512);
    h.set_mode(0o644);
    h.set_uid(u64::from(unsafe { libc::geteuid() }));
    h.set_gid(u64::from(unsafe { libc::getegid() }));
    let gnu = h.as_gnu_mut().unwrap();
    gnu.set_real_size(1024);
    gnu.sparse[0].set_offset(512);
    gnu.sparse[0].set_length(512);
    gnu.isextended[0] = 1;
    h.set_cksum();
    let mut t = h.as_bytes().to_vec();
    t.extend([0; 512]); // the extension block: no more chunks
    t.extend([b'q'; 512]);
    t.extend(header("././@LongLink", EntryType::GNULongName, 3 << 20));
    t.extend(vec![b'n'; 3 << 20]);
    t.extend([0; 1024]);
    let err = unpack(&mut &t[..], &d, &UnpackOptions::default())
        .expect_err("the oversized long name must be refused")
        .to_string();
    assert!(err.contains("GNU long name"), "{err}");
    let data = fs::read(d.join("holey")).unwrap();
    assert_eq!(data, [[0; 512], [b'q'; 512]].concat());
    fs::remove_dir_all(&d).unwrap();
}
