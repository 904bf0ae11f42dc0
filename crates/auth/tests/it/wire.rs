//! Just enough of the frontend/backend protocol to authenticate, blocking, for tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use pg_walstream_auth::{AuthError, AuthRequest, AuthResponse, Authenticator, ChannelSecurity};
use pg_walstream_testkit::TestServer;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};

/// How to reach the server.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Transport {
    Plain,
    Tls,
}

/// How a login attempt ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// AuthenticationOk accepted by the authenticator.
    Authenticated { channel_bound: bool },
    /// The authenticator refused to go on.
    Refused(AuthError),
    /// The server sent ErrorResponse.
    ServerError { sqlstate: String },
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// Connects, authenticates `user` and reports the outcome.
pub(crate) fn run(
    server: &TestServer,
    user: &str,
    transport: Transport,
    make: impl FnOnce(ChannelSecurity) -> Authenticator,
) -> Outcome {
    let mut tcp = TcpStream::connect((server.host(), server.port())).expect("connect");
    let (mut stream, security): (Box<dyn Stream>, ChannelSecurity) = match transport {
        Transport::Plain => (Box::new(tcp), ChannelSecurity::Plaintext),
        Transport::Tls => {
            tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
                .unwrap();
            let mut answer = [0u8; 1];
            tcp.read_exact(&mut answer).unwrap();
            assert_eq!(&answer, b"S", "server refused SSLRequest");
            let tls = tls_stream(server, tcp);
            let der = tls.conn.peer_certificates().expect("server certificate")[0].to_vec();
            (
                Box::new(tls),
                ChannelSecurity::Tls {
                    server_certificate_der: der,
                },
            )
        }
    };
    let mut startup = Vec::new();
    startup.extend_from_slice(&196_608_i32.to_be_bytes());
    for (key, value) in [("user", user), ("database", "postgres")] {
        startup.extend_from_slice(key.as_bytes());
        startup.push(0);
        startup.extend_from_slice(value.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut message = ((startup.len() + 4) as i32).to_be_bytes().to_vec();
    message.extend_from_slice(&startup);
    stream.write_all(&message).unwrap();

    let mut authenticator = make(security);
    loop {
        let (tag, body) = read_message(&mut stream);
        match tag {
            b'R' => {}
            b'E' => {
                return Outcome::ServerError {
                    sqlstate: error_field(&body, b'C'),
                };
            }
            b'N' => continue,
            other => panic!("unexpected message {:?}", other as char),
        }
        let code = i32::from_be_bytes(body[..4].try_into().unwrap());
        let rest = &body[4..];
        let mechanisms: Vec<String> = if code == 10 {
            rest.split(|b| *b == 0)
                .filter(|m| !m.is_empty())
                .map(|m| String::from_utf8(m.to_vec()).unwrap())
                .collect()
        } else {
            Vec::new()
        };
        let request = match code {
            0 => AuthRequest::Ok,
            3 => AuthRequest::CleartextPassword,
            5 => AuthRequest::Md5Password {
                salt: rest[..4].try_into().unwrap(),
            },
            10 => AuthRequest::Sasl {
                mechanisms: &mechanisms,
            },
            11 => AuthRequest::SaslContinue(rest),
            12 => AuthRequest::SaslFinal(rest),
            other => AuthRequest::Other(other),
        };
        match authenticator.handle(request) {
            Err(error) => return Outcome::Refused(error),
            Ok(_) if authenticator.is_authenticated() => {
                return Outcome::Authenticated {
                    channel_bound: authenticator.channel_bound(),
                };
            }
            Ok(None) => {}
            Ok(Some(response)) => stream.write_all(&encode(&response)).unwrap(),
        }
    }
}

fn tls_stream(
    server: &TestServer,
    tcp: TcpStream,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(server.ca_cert_path()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tcp = tcp;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    rustls::StreamOwned::new(conn, tcp)
}

fn encode(response: &AuthResponse) -> Vec<u8> {
    let mut body = Vec::new();
    match response {
        AuthResponse::Password(password) => {
            body.extend_from_slice(password);
            body.push(0);
        }
        AuthResponse::SaslInitialResponse { mechanism, data } => {
            body.extend_from_slice(mechanism.name().as_bytes());
            body.push(0);
            body.extend_from_slice(&(data.len() as i32).to_be_bytes());
            body.extend_from_slice(data);
        }
        AuthResponse::SaslResponse(data) => body.extend_from_slice(data),
        other => panic!("unknown response {other:?}"),
    }
    let mut message = vec![b'p'];
    message.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    message.extend_from_slice(&body);
    message
}

fn read_message(stream: &mut dyn Stream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).unwrap();
    let len = i32::from_be_bytes(header[1..].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).unwrap();
    (header[0], body)
}

fn error_field(body: &[u8], field: u8) -> String {
    body.split(|b| *b == 0)
        .find(|f| f.first() == Some(&field))
        .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
        .unwrap_or_default()
}
