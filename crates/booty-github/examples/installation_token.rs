//! An installation token with booty-github alone, as docs/embedding.md shows it.
//!
//! `cargo run -p booty-github --example installation_token -- APP_ID KEY.pem OWNER/REPO [API_URL]`
//! prints when the token for OWNER/REPO expires (never the token itself).

#![allow(
    clippy::print_stdout,
    reason = "an example program that reports to its user"
)]

use booty_github::{AppCredentials, Config, Credentials, GitHub, Repository};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: installation_token APP_ID KEY.pem OWNER/REPO [API_URL]";
    let (Some(id), Some(key), Some(repo)) = (args.next(), args.next(), args.next()) else {
        return Err(usage.into());
    };
    // The client id (or the numeric app id) and the PEM file GitHub hands out. This parses the key and
    // signs one JWT: a start-up check, without the network.
    let app = AppCredentials::from_pem_file(id.parse()?, key)?;
    let mut config = Config::default();
    if let Some(url) = args.next() {
        config.api_url = url;
    }
    let github = GitHub::new(Credentials::App(app), config)?;

    let repo: Repository = repo.parse()?;
    // A webhook from the App names its installation (`installation.id`); a repository webhook does not.
    let installation = github.installation_for_repository(&repo).await?;
    // Narrowed to this repository and to contents, issues and pull requests (write); cached until 5 minutes
    // before it expires, and minted once however many tasks ask at the same time.
    let token = github.token_for(installation, &repo).await?;
    // For git over HTTPS: user `x-access-token`, `token.expose()` as the password, kept in memory.
    println!(
        "installation {installation}: a token for {repo}, expiring at {:?}",
        token.expires_at()
    );
    Ok(())
}
