//! The FUSE operations, answered from [`StrataFs`]'s inodes and its vfs. Nothing can be
//! written: the mount is read-only, and `open` for writing and `access(W_OK)` say EROFS.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use super::fs::{Inode, StrataFs, TTL};
use fuser::{
    Filesystem, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyXattr, Request,
};
use libc::{ENODATA, ENOENT, ERANGE, EROFS};

/// Answers a size query (`size == 0`) or hands over `data` if it fits.
fn reply_xattr(reply: ReplyXattr, size: u32, data: &[u8]) {
    if size == 0 {
        reply.size(data.len() as u32);
    } else if data.len() > size as usize {
        reply.error(ERANGE);
    } else {
        reply.data(data);
    }
}

impl Filesystem for StrataFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_name(parent, name.as_bytes()) {
            Ok(ino) => {
                self.looked_up(ino);
                let generation = self.inode(ino).map_or(0, |i| i.generation);
                reply.entry(&TTL, &self.attr(ino), generation)
            }
            Err(e) => reply.error(e),
        }
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        StrataFs::forget(self, ino, nlookup);
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.inode(ino) {
            Some(_) => reply.attr(&TTL, &self.attr(ino)),
            None => reply.error(ENOENT),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.inode(ino).and_then(Inode::entry) {
            Some(entry) => match entry.link_target() {
                Some(target) => reply.data(target),
                None => reply.error(libc::EINVAL),
            },
            None => reply.error(ENOENT),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(EROFS);
        }
        match self.open_file(ino) {
            Ok(content) => {
                let fh = self.handle();
                self.open_files.insert(fh, Arc::new(content));
                // The content never changes: the kernel may keep its pages across opens.
                reply.opened(fh, fuser::consts::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(libc::EINVAL);
        };
        match self.read_range(ino, fh, offset, size.into()) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _owner: u64, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.open_files.remove(&fh);
        reply.ok();
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.list(ino) {
            Ok(listing) => {
                let fh = self.handle();
                self.open_dirs.insert(fh, listing);
                reply.opened(fh, 0);
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let listing = match self.open_dirs.get(&fh) {
            Some(l) => l.clone(),
            None => match self.list(ino) {
                Ok(l) => l,
                Err(e) => return reply.error(e),
            },
        };
        let skip = usize::try_from(offset).unwrap_or(0);
        for (i, (child, kind, name)) in listing.iter().enumerate().skip(skip) {
            if reply.add(*child, i as i64 + 1, *kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        reply: ReplyEmpty,
    ) {
        self.open_dirs.remove(&fh);
        reply.ok();
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        size: u32,
        reply: ReplyXattr,
    ) {
        let value = self.node(ino).and_then(|n| {
            n.xattrs
                .iter()
                .find(|x| x.name == name.as_bytes())
                .map(|x| x.value.clone())
        });
        match value {
            Some(v) => reply_xattr(reply, size, &v),
            None => reply.error(ENODATA),
        }
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let mut names = Vec::new();
        for x in self
            .node(ino)
            .map(|n| n.xattrs.as_slice())
            .unwrap_or_default()
        {
            names.extend_from_slice(&x.name);
            names.push(0);
        }
        reply_xattr(reply, size, &names);
    }

    fn access(&mut self, _req: &Request<'_>, ino: u64, mask: i32, reply: ReplyEmpty) {
        if self.inode(ino).is_none() {
            reply.error(ENOENT);
        } else if mask & libc::W_OK != 0 {
            reply.error(EROFS);
        } else {
            reply.ok();
        }
    }
}
