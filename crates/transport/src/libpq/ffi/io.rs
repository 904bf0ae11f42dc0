//! The descriptor and TLS plumbing around libpq's socket: readiness registration with
//! tokio, a non-consuming readability probe, and OpenSSL's `SSL_pending`.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use libpq_sys as pq;

pub(super) type SslPending = unsafe extern "C" fn(*const c_void) -> c_int;

/// `SSL_pending` of the OpenSSL that libpq itself uses, looked up once at run time (the
/// workspace does not link OpenSSL itself).
///
/// The lookup starts at libpq's own shared object (found with `dladdr` on a libpq function,
/// opened again with `RTLD_NOLOAD`): `dlsym` on that handle searches libpq and then its
/// dependencies breadth first, so it finds the `libssl` libpq was linked against. A
/// `dlsym(RTLD_DEFAULT, …)` would search the global scope instead, where another `libssl`
/// loaded earlier by the program (a different OpenSSL major version, whose `SSL` structure
/// differs) could come first: libpq's own calls still bind to its `libssl` through symbol
/// versions, but an unversioned lookup takes the first definition. When libpq is linked
/// statically into the program, the program's own scope is used.
pub(super) fn ssl_pending_fn() -> Option<SslPending> {
    static FUNCTION: OnceLock<Option<usize>> = OnceLock::new();
    let address = *FUNCTION.get_or_init(|| {
        let name = c"SSL_pending";
        // SAFETY: dladdr only reads the loader's tables for an address inside libpq (a
        // function we link), filling `info`; dlopen with RTLD_NOLOAD returns a handle to an
        // object that is already loaded (never loads one) and is balanced by dlclose; dlsym
        // reads symbol tables. libpq stays loaded (we link it), so the address stays valid.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            let in_libpq = (pq::PQsslStruct as *const ()).cast::<c_void>();
            let mut symbol = std::ptr::null_mut();
            if libc::dladdr(in_libpq, &raw mut info) != 0 && !info.dli_fname.is_null() {
                let handle = libc::dlopen(info.dli_fname, libc::RTLD_LAZY | libc::RTLD_NOLOAD);
                if !handle.is_null() {
                    symbol = libc::dlsym(handle, name.as_ptr());
                    libc::dlclose(handle);
                }
            }
            if symbol.is_null() {
                let program = libc::dlopen(std::ptr::null(), libc::RTLD_LAZY);
                if !program.is_null() {
                    symbol = libc::dlsym(program, name.as_ptr());
                    libc::dlclose(program);
                }
            }
            (!symbol.is_null()).then_some(symbol as usize)
        }
    });
    // SAFETY: the address is OpenSSL's `int SSL_pending(const SSL *)`, which has this signature.
    address.map(|address| unsafe { std::mem::transmute::<usize, SslPending>(address) })
}

/// The shared object that defines the `SSL_pending` used by [`RawConn::tls_read_pending`](super::RawConn::tls_read_pending),
/// for tests.
#[cfg(test)]
pub(crate) fn ssl_pending_object() -> Option<String> {
    use std::ffi::CStr;
    let function = ssl_pending_fn()?;
    // SAFETY: dladdr only reads the loader's tables; the file name is copied at once.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(function as *const c_void, &raw mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        Some(
            CStr::from_ptr(info.dli_fname)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// Whether socket `fd` has bytes to read, without consuming them (`recv` with `MSG_PEEK |
/// MSG_DONTWAIT`). `Ok(false)` means it would block; end-of-file counts as readable (libpq
/// then reports the closed connection).
pub(crate) fn socket_has_input(fd: RawFd) -> std::io::Result<bool> {
    let mut byte = 0u8;
    // SAFETY: `fd` is libpq's open socket; we read at most one byte into a valid buffer and
    // leave it in the socket (MSG_PEEK).
    let n = unsafe {
        libc::recv(
            fd,
            (&raw mut byte).cast::<c_void>(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n >= 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    match error.kind() {
        std::io::ErrorKind::WouldBlock => Ok(false),
        std::io::ErrorKind::Interrupted => Ok(true),
        _ => Err(error),
    }
}

/// A duplicate of libpq's socket, registered with tokio for readiness only.
///
/// libpq owns its descriptor and closes it whenever the connection fails (and in
/// `PQfinish`); the number can then be reused at once by another thread's new file. Had the
/// reactor registered libpq's number, deregistering it afterwards could remove that other
/// file's registration. The duplicate is ours: it stays open, and its number reserved, until
/// the registration is dropped. (It also keeps the socket itself open until then, so the
/// session drops its registration before `PQfinish` and as soon as libpq reports a failure.)
pub(crate) struct Socket(OwnedFd);

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Registers a duplicate of libpq's socket `fd` with the tokio reactor.
///
/// Register anew whenever libpq may have replaced its socket (after each `PQconnectPoll`
/// while connecting), and drop the registration before `PQfinish` and after a failure.
pub(crate) fn register_socket(
    fd: RawFd,
    interest: tokio::io::Interest,
) -> std::io::Result<tokio::io::unix::AsyncFd<Socket>> {
    // SAFETY: `fd` is the open socket libpq just reported with PQsocket, and it stays open
    // for the duration of this call (no libpq call happens in between); we only borrow it to
    // duplicate it (F_DUPFD_CLOEXEC).
    let duplicate = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned()?;
    reregister_socket(Socket(duplicate), interest)
}

/// Registers `socket` (a duplicate [`register_socket`] made; also one taken off the reactor
/// again with `AsyncFd::into_inner`) with the tokio reactor.
pub(crate) fn reregister_socket(
    socket: Socket,
    interest: tokio::io::Interest,
) -> std::io::Result<tokio::io::unix::AsyncFd<Socket>> {
    // SAFETY: the registered descriptor is the duplicate owned by `socket`, which moves into
    // the returned `AsyncFd`: it stays open for exactly as long as the registration.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(socket, interest) }
        .map_err(Into::into)
}
