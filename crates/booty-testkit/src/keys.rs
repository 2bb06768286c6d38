//! RSA keys for a test GitHub App, generated at test time with the `openssl` command (never committed).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A 2048-bit RSA key pair in the forms the tests need.
#[derive(Debug)]
pub struct TestKey {
    /// The private key as PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), as GitHub hands App keys out.
    pub pkcs1_pem: String,
    /// The same key as PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub pkcs8_pem: String,
    /// The public key as PKCS#1 `RSAPublicKey` DER, what ring verifies RS256 signatures with.
    pub public_der: Vec<u8>,
}

/// The test App's key: generated once per test process.
pub fn test_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| generate(2048))
}

/// A fresh RSA key of `bits` bits (small ones are for testing that they are refused).
///
/// # Panics
/// When `openssl` is not installed or fails.
pub fn generate(bits: u32) -> TestKey {
    let pkcs8 = openssl(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
        ],
        None,
    );
    // OpenSSL 3 writes PKCS#8 unless told `-traditional`; 1.1 writes PKCS#1 and knows no such flag.
    let pkcs1 = try_openssl(&["rsa", "-traditional"], Some(&pkcs8))
        .unwrap_or_else(|| openssl(&["rsa"], Some(&pkcs8)));
    let public_der = openssl(
        &["rsa", "-RSAPublicKey_out", "-outform", "DER"],
        Some(&pkcs8),
    );
    let key = TestKey {
        pkcs1_pem: String::from_utf8(pkcs1).expect("PEM is ASCII"),
        pkcs8_pem: String::from_utf8(pkcs8).expect("PEM is ASCII"),
        public_der,
    };
    assert!(key.pkcs1_pem.contains("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(key.pkcs8_pem.contains("-----BEGIN PRIVATE KEY-----"));
    key
}

/// Runs `openssl ARGS` with `stdin`, returning its standard output.
///
/// # Panics
/// When `openssl` cannot run or fails: the message says how to install it.
pub fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    try_openssl(args, stdin).unwrap_or_else(|| {
        panic!(
            "`openssl {}` failed: the tests generate their GitHub App keys with the openssl command \
             (Debian: apt-get install openssl)",
            args.join(" ")
        )
    })
}

fn try_openssl(args: &[&str], stdin: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut child = Command::new("openssl")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut input = child.stdin.take().expect("piped");
    if let Some(bytes) = stdin {
        input.write_all(bytes).ok()?;
    }
    drop(input);
    let output = child.wait_with_output().ok()?;
    output.status.success().then_some(output.stdout)
}
