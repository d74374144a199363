//! What a tools plugin may have changed in its workspace, seen from the WASI calls it makes, so
//! the patch at `submit` reads only those paths instead of walking the whole snapshot.
//!
//! The filesystem functions that can change something are shadowed in the linker: each records
//! the workspace-relative path it touches, then runs wasmtime-wasi's own implementation. Paths
//! are known because every descriptor comes from `get-directories` or `open-at`, and each one
//! is mapped to the path it was opened at. Anything the log cannot follow exactly (a
//! descriptor of unknown origin, a path leaving the workspace, links) makes it give up, and the
//! caller falls back to the full scan.

use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::filesystem::WasiFilesystemView;
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    self as fs, Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags,
};

use super::state::StoreState;

/// wasmtime-wasi's filesystem error, as the guest receives it.
fn guest_error<T>(
    store: &mut StoreContextMut<'_, StoreState>,
    r: Result<T, wasmtime_wasi::p2::FsError>,
) -> wasmtime::Result<Result<T, ErrorCode>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) => Ok(Err(fs::Host::convert_error_code(
            &mut store.data_mut().filesystem(),
            e,
        )?)),
    }
}

/// Replaces, in a linker that already has WASI, the functions that open descriptors or change
/// files, with versions that record what they touch in the store's `WriteLog`.
pub(crate) fn track_writes(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut pre = linker.instance("wasi:filesystem/preopens@0.2.12")?;
    pre.func_wrap(
        "get-directories",
        |mut store: StoreContextMut<'_, StoreState>, (): ()| {
            let dirs = preopens::Host::get_directories(&mut store.data_mut().filesystem())?;
            let log = &mut store.data_mut().writes;
            for (d, _) in &dirs {
                log.opened.insert(d.rep(), String::new());
            }
            Ok((dirs,))
        },
    )?;
    let mut types = linker.instance("wasi:filesystem/types@0.2.12")?;
    types.func_wrap(
        "[method]descriptor.open-at",
        |mut store: StoreContextMut<'_, StoreState>,
         (fd, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            let dir = fd.rep();
            let log = &mut store.data_mut().writes;
            let at = log.resolve(dir, &path);
            // Recorded before the call: a failed open may still have created or truncated.
            if flags.contains(DescriptorFlags::WRITE)
                || open_flags.intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE)
            {
                if let Some(p) = &at {
                    log.changed.insert(p.clone());
                }
            }
            let r = fs::HostDescriptor::open_at(
                &mut store.data_mut().filesystem(),
                fd,
                path_flags,
                path,
                open_flags,
                flags,
            );
            let r = guest_error(&mut store, r)?;
            if let (Ok(new), Some(p)) = (&r, at) {
                store.data_mut().writes.opened.insert(new.rep(), p);
            }
            Ok((r,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.unlink-file-at",
        |mut store: StoreContextMut<'_, StoreState>, (fd, path): (Resource<Descriptor>, String)| {
            store.data_mut().writes.touch(fd.rep(), &path);
            let r =
                fs::HostDescriptor::unlink_file_at(&mut store.data_mut().filesystem(), fd, path);
            Ok((guest_error(&mut store, r)?,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.remove-directory-at",
        |mut store: StoreContextMut<'_, StoreState>, (fd, path): (Resource<Descriptor>, String)| {
            store.data_mut().writes.touch(fd.rep(), &path);
            let r = fs::HostDescriptor::remove_directory_at(
                &mut store.data_mut().filesystem(),
                fd,
                path,
            );
            Ok((guest_error(&mut store, r)?,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.rename-at",
        |mut store: StoreContextMut<'_, StoreState>,
         (fd, old, new_fd, new): (Resource<Descriptor>, String, Resource<Descriptor>, String)| {
            let log = &mut store.data_mut().writes;
            log.touch(fd.rep(), &old);
            log.touch(new_fd.rep(), &new);
            let r = fs::HostDescriptor::rename_at(
                &mut store.data_mut().filesystem(),
                fd,
                old,
                new_fd,
                new,
            );
            Ok((guest_error(&mut store, r)?,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.symlink-at",
        |mut store: StoreContextMut<'_, StoreState>,
         (fd, target, path): (Resource<Descriptor>, String, String)| {
            // A link redirects later writes to paths the log cannot predict.
            store
                .data_mut()
                .writes
                .lose(format!("symlink {path:?} created"));
            let r = fs::HostDescriptor::symlink_at(
                &mut store.data_mut().filesystem(),
                fd,
                target,
                path,
            );
            Ok((guest_error(&mut store, r)?,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.link-at",
        |mut store: StoreContextMut<'_, StoreState>,
         (fd, flags, old, new_fd, new): (
            Resource<Descriptor>,
            PathFlags,
            String,
            Resource<Descriptor>,
            String,
        )| {
            store
                .data_mut()
                .writes
                .lose(format!("hard link {new:?} created"));
            let r = fs::HostDescriptor::link_at(
                &mut store.data_mut().filesystem(),
                fd,
                flags,
                old,
                new_fd,
                new,
            );
            Ok((guest_error(&mut store, r)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::write_log::join;

    #[test]
    fn joins_lexically_and_refuses_escapes() {
        assert_eq!(join("", "a/b.py").as_deref(), Some("a/b.py"));
        assert_eq!(join("a", "./b/../c.py").as_deref(), Some("a/c.py"));
        assert_eq!(join("a/b", "..//x").as_deref(), Some("a/x"));
        assert_eq!(join("", ".").as_deref(), Some(""));
        assert_eq!(join("a", "../..").as_deref(), None);
        assert_eq!(join("", "/etc/passwd").as_deref(), None);
    }
}
