//! The request pipeline (git or REST, headers, authentication, rate limits, faults, schema checks) and one
//! handler per operation, each answering with the description's example filled in from the fake's state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

mod gitdata;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SecureRandom as _;
use serde_json::{Value, json};

use super::openapi::{Description, Operation};
use super::server::{Reply, Req};
use super::time::{http_date, rfc3339};
use super::{
    APP_ID, APP_SLUG, CLIENT_ID, Caller, DeliverySeed, Fault, Hook, Mint, Repo, Seen, Shared,
    State, git, jwt, manifest, schema,
};

/// What an operation needs: nothing, the App's JWT, or a token with a permission at a level.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Need {
    /// No credentials, and none should be sent (the manifest conversion: the code is the credential).
    Nothing,
    Jwt,
    Token(&'static str, &'static str),
}

/// Every operation the fake serves and what it needs (GitHub's "permissions required" for each endpoint).
pub(crate) const PERMISSIONS: &[(&str, Need)] = &[
    ("apps/get-repo-installation", Need::Jwt),
    ("apps/create-installation-access-token", Need::Jwt),
    ("issues/create-comment", Need::Token("issues", "write")),
    ("issues/update-comment", Need::Token("issues", "write")),
    ("issues/list-comments", Need::Token("issues", "read")),
    ("reactions/create-for-issue", Need::Token("issues", "write")),
    (
        "reactions/create-for-issue-comment",
        Need::Token("issues", "write"),
    ),
    ("pulls/list", Need::Token("pull_requests", "read")),
    ("pulls/create", Need::Token("pull_requests", "write")),
    ("pulls/update", Need::Token("pull_requests", "write")),
    ("apps/list-webhook-deliveries", Need::Jwt),
    ("apps/get-webhook-delivery", Need::Jwt),
    ("apps/redeliver-webhook-delivery", Need::Jwt),
    (
        "repos/list-webhook-deliveries",
        Need::Token("repository_hooks", "read"),
    ),
    (
        "repos/get-webhook-delivery",
        Need::Token("repository_hooks", "read"),
    ),
    (
        "repos/redeliver-webhook-delivery",
        Need::Token("repository_hooks", "write"),
    ),
    (
        "orgs/list-webhook-deliveries",
        Need::Token("organization_hooks", "read"),
    ),
    (
        "orgs/get-webhook-delivery",
        Need::Token("organization_hooks", "read"),
    ),
    (
        "orgs/redeliver-webhook-delivery",
        Need::Token("organization_hooks", "write"),
    ),
    ("apps/create-from-manifest", Need::Nothing),
    ("git/get-ref", Need::Token("contents", "read")),
    ("git/create-ref", Need::Token("contents", "write")),
    ("git/update-ref", Need::Token("contents", "write")),
    ("git/create-blob", Need::Token("contents", "write")),
    ("git/create-tree", Need::Token("contents", "write")),
    ("git/create-commit", Need::Token("contents", "write")),
];

const DOCS: &str = "https://docs.github.com/rest";
const SECONDARY_MESSAGE: &str = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.";
/// How long an installation token lives.
const TOKEN_LIFETIME: Duration = Duration::from_hours(1);

/// The answer to one request, before the common headers.
struct Answer {
    status: u16,
    body: Value,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn ok(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Self::ok(
            status,
            json!({"message": message, "documentation_url": DOCS, "status": status.to_string()}),
        )
    }

    fn validation(errors: &Value) -> Self {
        Self::ok(
            422,
            json!({"message": "Validation Failed", "errors": errors, "documentation_url": DOCS, "status": "422"}),
        )
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// Handles one request and records it.
pub(crate) async fn handle(shared: &Shared, request: Req) -> Reply {
    let (reply, operation, caller) =
        if let Some((repository, service)) = git::parse(&request.path, &request.query) {
            git_request(shared, &request, &repository, service).await
        } else if let Some(org) = manifest::route(&request.method, &request.path) {
            let reply = manifest::form(shared, &request, org).await;
            (reply, "settings/apps/new".to_owned(), Caller::Anonymous)
        } else {
            rest(shared, &request).await
        };
    let body = serde_json::from_slice(&request.body).ok();
    shared.lock().requests.push(Seen {
        operation,
        method: request.method.clone(),
        target: request.target(),
        status: reply.status,
        caller,
        user_agent: request.header("user-agent").map(str::to_owned),
        body,
    });
    reply
}

async fn rest(shared: &Shared, request: &Req) -> (Reply, String, Caller) {
    let description = Description::get(shared.flavor);
    let Some(path) = request.path.strip_prefix(shared.flavor.prefix()) else {
        violation(
            shared,
            format!("{} is outside the API's prefix", request.path),
        );
        return (
            finish(shared, Answer::error(404, "Not Found")),
            "unknown".to_owned(),
            Caller::Anonymous,
        );
    };
    let Some((operation, parameters)) = description.route(&request.method, path) else {
        violation(
            shared,
            format!("GitHub's description has no {} {path}", request.method),
        );
        return (
            finish(shared, Answer::error(404, "Not Found")),
            "unknown".to_owned(),
            Caller::Anonymous,
        );
    };
    let id = operation.id.clone();
    let slow = {
        let mut state = shared.lock();
        take_fault(&mut state, &id, |fault| match fault {
            Fault::Slow(delay) => Some(*delay),
            _ => None,
        })
    };
    if let Some(delay) = slow {
        tokio::time::sleep(delay).await;
    }
    let (answer, caller) = respond(shared, description, operation, &parameters, request);
    let answer = check_answer(shared, description, operation, answer);
    (finish(shared, answer), id, caller)
}

fn respond(
    shared: &Shared,
    description: &Description,
    operation: &Operation,
    parameters: &HashMap<String, String>,
    request: &Req,
) -> (Answer, Caller) {
    let mut state = shared.lock();
    let now = shared.now(&state);
    if let Some(answer) = header_problem(&mut state, request) {
        return (answer, Caller::Anonymous);
    }
    let need = PERMISSIONS
        .iter()
        .find(|(id, _)| *id == operation.id)
        .map_or(Need::Jwt, |(_, need)| *need);
    let (caller, app_id) = match authenticate(shared, &mut state, request, need, now) {
        Ok(caller) => caller,
        Err(answer) => return (answer, Caller::Refused),
    };
    if let Some(answer) = rate_limited(&mut state, &operation.id, now) {
        return (answer, caller);
    }
    if let Some((status, message)) = take_fault(&mut state, &operation.id, |fault| match fault {
        Fault::Status(status) => Some((*status, "Server Error".to_owned())),
        Fault::Refuse { status, message } => Some((*status, message.clone())),
        _ => None,
    }) {
        return (Answer::error(status, &message), caller);
    }
    if let Err(answer) = access(&state, &caller, need, parameters) {
        return (answer, caller);
    }
    let body = match check_request(&mut state, operation, parameters, request) {
        Ok(body) => body,
        Err(answer) => return (answer, caller),
    };
    let context = Context {
        shared,
        description,
        parameters,
        query: url::form_urlencoded::parse(request.query.as_bytes())
            .into_owned()
            .collect(),
        body,
        caller: caller.clone(),
        app_id,
        now,
    };
    let answer = dispatch(&context, &mut state, &operation.id);
    if let Some(status) = take_fault(&mut state, &operation.id, |fault| match fault {
        Fault::StatusAfterApplying(status) => Some(*status),
        _ => None,
    }) {
        return (Answer::error(status, "Server Error"), caller);
    }
    (answer, caller)
}

/// What a handler works with.
struct Context<'a> {
    shared: &'a Shared,
    description: &'a Description,
    parameters: &'a HashMap<String, String>,
    query: HashMap<String, String>,
    body: Value,
    caller: Caller,
    /// The App whose JWT authorized the request (the test App's id for other callers).
    app_id: u64,
    now: SystemTime,
}

impl Context<'_> {
    fn parameter(&self, name: &str) -> &str {
        self.parameters.get(name).map_or("", String::as_str)
    }

    fn number(&self, name: &str) -> u64 {
        self.parameter(name).parse().unwrap_or(0)
    }

    fn repository(&self) -> String {
        format!("{}/{}", self.parameter("owner"), self.parameter("repo"))
    }

    fn example(&self, id: &str, status: u16) -> Value {
        let operation = self
            .description
            .operations
            .iter()
            .find(|operation| operation.id == id)
            .expect("a vendored operation");
        self.description.example(operation, status).clone()
    }

    /// The account the caller acts as, shaped like the example's `user`.
    fn user(&self, template: &Value) -> Value {
        let mut user = template.clone();
        let (login, id, kind) = match self.caller {
            Caller::Installation(_) | Caller::App => {
                (format!("{APP_SLUG}[bot]"), 41_898_282, "Bot")
            }
            _ => ("octocat".to_owned(), 1, "User"),
        };
        user["login"] = json!(login);
        user["id"] = json!(id);
        user["type"] = json!(kind);
        user["html_url"] = json!(format!("https://github.com/{login}"));
        user
    }

    fn page(&self) -> (usize, usize) {
        let per_page = self
            .query
            .get("per_page")
            .and_then(|value| value.parse().ok())
            .unwrap_or(30_usize)
            .clamp(1, 100);
        let page = self
            .query
            .get("page")
            .and_then(|value| value.parse().ok())
            .unwrap_or(1_usize)
            .max(1);
        (per_page, page)
    }

    /// `items` cut to the requested page, with `Link` to the next and last pages.
    fn paginate(&self, request_path: &str, items: Vec<Value>) -> Answer {
        let (per_page, page) = self.page();
        let last = items.len().div_ceil(per_page).max(1);
        let shown: Vec<Value> = items
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect();
        let mut answer = Answer::ok(200, Value::Array(shown));
        if page < last {
            let link = |page: usize| {
                let mut query: BTreeMap<&str, String> = self
                    .query
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.clone()))
                    .collect();
                query.insert("page", page.to_string());
                let query: String = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(query)
                    .finish();
                format!("{}{request_path}?{query}", self.shared.base_url)
            };
            answer = answer.header(
                "link",
                format!(
                    "<{}>; rel=\"next\", <{}>; rel=\"last\"",
                    link(page + 1),
                    link(last)
                ),
            );
        }
        answer
    }
}

fn dispatch(context: &Context<'_>, state: &mut State, id: &str) -> Answer {
    match id {
        "apps/get-repo-installation" => get_installation(context, state),
        "apps/create-installation-access-token" => mint(context, state),
        "issues/create-comment" => create_comment(context, state),
        "issues/update-comment" => update_comment(context, state),
        "issues/list-comments" => list_comments(context, state),
        "reactions/create-for-issue" | "reactions/create-for-issue-comment" => {
            react(context, state, id)
        }
        "pulls/list" => list_pulls(context, state),
        "pulls/create" => create_pull(context, state),
        "pulls/update" => update_pull(context, state),
        "apps/create-from-manifest" => {
            let example = context.example(id, 201);
            match manifest::convert(
                state,
                context.parameter("code"),
                context.now,
                example,
                &context.shared.base_url,
            ) {
                Some(app) => Answer::ok(201, app),
                None => Answer::error(404, "Not Found"),
            }
        }
        "git/create-blob" => gitdata::create_blob(context, state),
        "git/create-tree" => gitdata::create_tree(context, state),
        "git/create-commit" => gitdata::create_commit(context, state),
        "git/get-ref" => gitdata::get_ref(context, state),
        "git/create-ref" => gitdata::create_ref(context, state),
        "git/update-ref" => gitdata::update_ref(context, state),
        _ => deliveries(context, state, id),
    }
}

fn get_installation(context: &Context<'_>, state: &State) -> Answer {
    let Some((installation, installed)) = state
        .repos
        .get(&context.repository())
        .and_then(|repo| repo.installation)
        .and_then(|id| Some((id, state.installations.get(&id)?)))
        .filter(|(_, installed)| installed.app_id == context.app_id)
    else {
        return Answer::error(404, "Not Found");
    };
    let account = installed.account.as_str();
    let (client_id, slug) = state
        .created
        .iter()
        .find(|(app, _)| app.id == context.app_id)
        .map_or((CLIENT_ID, APP_SLUG), |(app, _)| {
            (app.client_id.as_str(), app.slug.as_str())
        });
    let mut body = context.example("apps/get-repo-installation", 200);
    body["id"] = json!(installation);
    body["app_id"] = json!(context.app_id);
    body["client_id"] = json!(client_id);
    body["app_slug"] = json!(slug);
    body["account"]["login"] = json!(account);
    body["repository_selection"] = json!("selected");
    body["access_tokens_url"] = json!(format!(
        "{}{}/app/installations/{installation}/access_tokens",
        context.shared.base_url,
        context.shared.flavor.prefix()
    ));
    Answer::ok(200, body)
}

fn mint(context: &Context<'_>, state: &mut State) -> Answer {
    let id = context.number("installation_id");
    let Some(installation) = state
        .installations
        .get(&id)
        .filter(|installation| installation.app_id == context.app_id)
    else {
        return Answer::error(404, "Not Found");
    };
    let in_installation: BTreeMap<&str, &Repo> = state
        .repos
        .values()
        .filter(|repo| repo.installation == Some(id))
        .map(|repo| (repo.name.as_str(), repo))
        .collect();
    let mut names = BTreeSet::new();
    for name in context.body["repositories"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = name.as_str().unwrap_or_default();
        if !in_installation.contains_key(name) {
            return Answer::error(
                422,
                "There is at least one repository that does not exist or is not accessible to the parent installation.",
            );
        }
        names.insert(name.to_owned());
    }
    for repo_id in context.body["repository_ids"]
        .as_array()
        .into_iter()
        .flatten()
    {
        match in_installation
            .values()
            .find(|repo| Some(repo.id) == repo_id.as_u64())
        {
            Some(repo) => {
                names.insert(repo.name.clone());
            }
            None => {
                return Answer::error(
                    422,
                    "There is at least one repository that does not exist or is not accessible to the parent installation.",
                );
            }
        }
    }
    let granted: BTreeMap<String, String> = match context.body["permissions"].as_object() {
        Some(requested) => {
            let mut granted = BTreeMap::new();
            for (name, level) in requested {
                let level = level.as_str().unwrap_or_default();
                let has = installation.permissions.get(name).map(String::as_str);
                if has.is_none_or(|has| rank(has) < rank(level)) {
                    return Answer::error(
                        422,
                        "The permissions requested are not granted to this installation.",
                    );
                }
                granted.insert(name.clone(), level.to_owned());
            }
            granted
        }
        None => installation.permissions.clone(),
    };
    let narrowed = !names.is_empty();
    let token = new_token();
    let expires_at = context.now + TOKEN_LIFETIME;
    state.mints.push(Mint {
        installation: id,
        repositories: narrowed.then(|| names.iter().cloned().collect()),
        permissions: granted.clone(),
        token: token.clone(),
        issued_at: context.now,
        expires_at,
    });
    state.tokens.insert(token.clone(), state.mints.len() - 1);

    let mut body = context.example("apps/create-installation-access-token", 201);
    let template = body["repositories"][0].clone();
    let shown: Vec<&Repo> = in_installation
        .values()
        .filter(|repo| !narrowed || names.contains(&repo.name))
        .copied()
        .collect();
    body["repositories"] = Value::Array(
        shown
            .iter()
            .map(|repo| repository(&template, repo))
            .collect(),
    );
    body["token"] = json!(token);
    body["expires_at"] = json!(rfc3339(expires_at));
    body["permissions"] = json!(granted);
    body["repository_selection"] = json!(if narrowed { "selected" } else { "all" });
    Answer::ok(201, body)
}

/// A repository object shaped like the example's.
fn repository(template: &Value, repo: &Repo) -> Value {
    let mut value = template.clone();
    value["id"] = json!(repo.id);
    value["name"] = json!(repo.name);
    value["full_name"] = json!(format!("{}/{}", repo.owner, repo.name));
    value["owner"]["login"] = json!(repo.owner);
    value["private"] = json!(true);
    value
}

/// A token of GitHub's new, longer kind: the client must not assume a length or a layout.
fn new_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut random = [0_u8; 116];
    ring::rand::SystemRandom::new()
        .fill(&mut random)
        .expect("the system's random generator");
    let body: String = random
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]))
        .collect();
    format!("ghs_{body}")
}

fn rank(level: &str) -> u8 {
    match level {
        "read" => 1,
        "write" => 2,
        "admin" => 3,
        _ => 0,
    }
}

fn next_id(state: &mut State) -> u64 {
    state.next_id += 1;
    state.next_id
}

fn create_comment(context: &Context<'_>, state: &mut State) -> Answer {
    let full_name = context.repository();
    let issue = context.number("issue_number");
    let id = next_id(state);
    let mut comment = context.example("issues/create-comment", 201);
    comment["user"] = context.user(&comment["user"]);
    let Some(repo) = state.repos.get_mut(&full_name) else {
        return Answer::error(404, "Not Found");
    };
    comment["id"] = json!(id);
    comment["body"] = context.body["body"].clone();
    comment["html_url"] = json!(format!(
        "https://github.com/{full_name}/issues/{issue}#issuecomment-{id}"
    ));
    comment["url"] = json!(format!(
        "https://api.github.com/repos/{full_name}/issues/comments/{id}"
    ));
    comment["issue_url"] = json!(format!(
        "https://api.github.com/repos/{full_name}/issues/{issue}"
    ));
    comment["created_at"] = json!(rfc3339(context.now));
    comment["updated_at"] = json!(rfc3339(context.now));
    repo.comments.push((issue, comment.clone()));
    let location = comment["url"].as_str().unwrap_or_default().to_owned();
    Answer::ok(201, comment).header("location", location)
}

fn update_comment(context: &Context<'_>, state: &mut State) -> Answer {
    let id = context.number("comment_id");
    let Some(repo) = state.repos.get_mut(&context.repository()) else {
        return Answer::error(404, "Not Found");
    };
    let Some((_, comment)) = repo
        .comments
        .iter_mut()
        .find(|(_, comment)| comment["id"] == id)
    else {
        return Answer::error(404, "Not Found");
    };
    comment["body"] = context.body["body"].clone();
    comment["updated_at"] = json!(rfc3339(context.now));
    Answer::ok(200, comment.clone())
}

fn list_comments(context: &Context<'_>, state: &State) -> Answer {
    let issue = context.number("issue_number");
    let Some(repo) = state.repos.get(&context.repository()) else {
        return Answer::error(404, "Not Found");
    };
    let template = context.example("issues/list-comments", 200)[0].clone();
    let items = repo
        .comments
        .iter()
        .filter(|(number, _)| *number == issue)
        .map(|(_, comment)| project(&template, comment))
        .collect();
    context.paginate(&context.request_path(), items)
}

impl Context<'_> {
    /// The request's path, rebuilt from its parameters (for `Link`).
    fn request_path(&self) -> String {
        let full_name = self.repository();
        let prefix = self.shared.flavor.prefix();
        if self.parameters.contains_key("issue_number") {
            format!(
                "{prefix}/repos/{full_name}/issues/{}/comments",
                self.parameter("issue_number")
            )
        } else {
            format!("{prefix}/repos/{full_name}/pulls")
        }
    }
}

fn react(context: &Context<'_>, state: &mut State, id: &str) -> Answer {
    let full_name = context.repository();
    let subject = if id == "reactions/create-for-issue" {
        format!("issue {}", context.parameter("issue_number"))
    } else {
        format!("comment {}", context.parameter("comment_id"))
    };
    let emoji = context.body["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let reaction_id = next_id(state);
    let mut reaction = context.example(id, 201);
    reaction["user"] = context.user(&reaction["user"]);
    let login = reaction["user"]["login"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let Some(repo) = state.repos.get_mut(&full_name) else {
        return Answer::error(404, "Not Found");
    };
    if id == "reactions/create-for-issue-comment" {
        let comment = context.number("comment_id");
        if !repo
            .comments
            .iter()
            .any(|(_, value)| value["id"] == comment)
        {
            return Answer::error(404, "Not Found");
        }
    }
    if let Some((_, _, _, existing)) = repo
        .reactions
        .iter()
        .find(|(on, what, who, _)| *on == subject && *what == emoji && *who == login)
    {
        return Answer::ok(200, existing.clone());
    }
    reaction["id"] = json!(reaction_id);
    reaction["content"] = json!(emoji);
    reaction["created_at"] = json!(rfc3339(context.now));
    repo.reactions
        .push((subject, emoji, login, reaction.clone()));
    Answer::ok(201, reaction)
}

fn list_pulls(context: &Context<'_>, state: &State) -> Answer {
    let Some(repo) = state.repos.get(&context.repository()) else {
        return Answer::error(404, "Not Found");
    };
    let template = context.example("pulls/list", 200)[0].clone();
    let wanted_state = context.query.get("state").map_or("open", String::as_str);
    let head = context.query.get("head");
    let items = repo
        .pulls
        .iter()
        .filter(|pull| wanted_state == "all" || pull["state"] == wanted_state)
        .filter(|pull| head.is_none_or(|head| pull["head"]["label"] == head.as_str()))
        .map(|pull| project(&template, pull))
        .collect();
    context.paginate(&context.request_path(), items)
}

/// `full` in the shape of `template` (how a list shows an item, which GitHub's examples do not always show
/// as the single-item answer does): every key of the template, at every level, with `full`'s value where
/// it has one and the template's where it has none.
fn project(template: &Value, full: &Value) -> Value {
    match (template, full) {
        (Value::Object(template), Value::Object(full)) => Value::Object(
            template
                .iter()
                .map(|(key, shape)| {
                    let value = match full.get(key) {
                        Some(value)
                            if key == "permissions" || key == "payload" || key == "headers" =>
                        {
                            value.clone()
                        }
                        Some(value) => project(shape, value),
                        None => shape.clone(),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        (Value::Array(template), Value::Array(full)) => match template.first() {
            Some(shape) => Value::Array(full.iter().map(|item| project(shape, item)).collect()),
            None => Value::Array(full.clone()),
        },
        (_, Value::Null) | (Value::Null, _) => full.clone(),
        (template, full) if std::mem::discriminant(template) == std::mem::discriminant(full) => {
            full.clone()
        }
        (template, _) => template.clone(),
    }
}

fn create_pull(context: &Context<'_>, state: &mut State) -> Answer {
    let full_name = context.repository();
    let id = next_id(state);
    let mut pull = context.example("pulls/create", 201);
    pull["user"] = context.user(&pull["user"]);
    let Some(repo) = state.repos.get_mut(&full_name) else {
        return Answer::error(404, "Not Found");
    };
    let head = context.body["head"].as_str().unwrap_or_default();
    let base = context.body["base"].as_str().unwrap_or_default();
    let branch = match head.split_once(':') {
        Some((owner, branch)) if owner == repo.owner => branch,
        Some(_) => "",
        None => head,
    };
    let Some(head_sha) = git::branch_head(&repo.path, branch).filter(|_| !branch.is_empty()) else {
        return Answer::validation(
            &json!([{"resource": "PullRequest", "field": "head", "code": "invalid"}]),
        );
    };
    let Some(base_sha) = git::branch_head(&repo.path, base) else {
        return Answer::validation(
            &json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]),
        );
    };
    let label = format!("{}:{branch}", repo.owner);
    if repo
        .pulls
        .iter()
        .any(|pull| pull["state"] == "open" && pull["head"]["label"] == label)
    {
        return Answer::validation(&json!([{
            "resource": "PullRequest",
            "code": "custom",
            "message": format!("A pull request already exists for {label}.")
        }]));
    }
    let number = repo.next_number;
    repo.next_number += 1;
    pull["id"] = json!(id);
    pull["number"] = json!(number);
    pull["state"] = json!("open");
    pull["title"] = context.body["title"].clone();
    pull["body"] = context.body.get("body").cloned().unwrap_or(Value::Null);
    pull["draft"] = json!(context.body["draft"].as_bool().unwrap_or(false));
    pull["html_url"] = json!(format!("https://github.com/{full_name}/pull/{number}"));
    pull["url"] = json!(format!(
        "https://api.github.com/repos/{full_name}/pulls/{number}"
    ));
    pull["created_at"] = json!(rfc3339(context.now));
    pull["updated_at"] = json!(rfc3339(context.now));
    pull["merged"] = json!(false);
    for (side, name, sha) in [("head", branch, head_sha), ("base", base, base_sha)] {
        pull[side]["ref"] = json!(name);
        pull[side]["sha"] = json!(sha);
        pull[side]["label"] = json!(format!("{}:{name}", repo.owner));
        pull[side]["repo"] = repository(&pull[side]["repo"], repo);
    }
    repo.pulls.push(pull.clone());
    let location = pull["url"].as_str().unwrap_or_default().to_owned();
    Answer::ok(201, pull).header("location", location)
}

fn update_pull(context: &Context<'_>, state: &mut State) -> Answer {
    let number = context.number("pull_number");
    let Some(repo) = state.repos.get_mut(&context.repository()) else {
        return Answer::error(404, "Not Found");
    };
    if let Some(base) = context.body["base"].as_str()
        && git::branch_head(&repo.path, base).is_none()
    {
        return Answer::validation(
            &json!([{"resource": "PullRequest", "field": "base", "code": "invalid"}]),
        );
    }
    let Some(pull) = repo.pulls.iter_mut().find(|pull| pull["number"] == number) else {
        return Answer::error(404, "Not Found");
    };
    for field in ["title", "body", "state"] {
        if let Some(value) = context.body.get(field) {
            pull[field] = value.clone();
        }
    }
    if let Some(base) = context.body["base"].as_str() {
        pull["base"]["ref"] = json!(base);
    }
    pull["updated_at"] = json!(rfc3339(context.now));
    Answer::ok(200, pull.clone())
}

/// The hook an operation's parameters name.
fn hook_of(context: &Context<'_>, id: &str) -> Hook {
    if id.starts_with("apps/") {
        Hook::App
    } else if id.starts_with("repos/") {
        Hook::Repository(context.repository(), context.number("hook_id"))
    } else {
        Hook::Organization(
            context.parameter("org").to_owned(),
            context.number("hook_id"),
        )
    }
}

fn deliveries(context: &Context<'_>, state: &mut State, id: &str) -> Answer {
    let hook = hook_of(context, id);
    // An App always has its webhook; a repository's or organization's must have been seeded.
    if hook == Hook::App {
        state.deliveries.entry(Hook::App).or_default();
    }
    let Some(list) = state.deliveries.get(&hook) else {
        return Answer::error(404, "Not Found");
    };
    if id.ends_with("list-webhook-deliveries") {
        let template = context.example(id, 200)[0].clone();
        let (per_page, _) = context.page();
        let after = context
            .query
            .get("cursor")
            .and_then(|cursor| cursor.strip_prefix("v1_"))
            .and_then(|id| id.parse::<u64>().ok());
        let start = after.map_or(0, |after| {
            list.iter()
                .position(|delivery| delivery["id"] == after)
                .map_or(list.len(), |at| at + 1)
        });
        let wanted = context.query.get("status").map(String::as_str);
        let matching: Vec<&Value> = list[start..]
            .iter()
            .filter(|delivery| match wanted {
                Some("success") => delivery["status"] == "OK",
                Some("failure") => delivery["status"] != "OK",
                _ => true,
            })
            .collect();
        let shown: Vec<Value> = matching
            .iter()
            .take(per_page)
            .map(|delivery| project(&template, delivery))
            .collect();
        let mut answer = Answer::ok(200, Value::Array(shown.clone()));
        if matching.len() > per_page
            && let Some(last) = shown.last()
        {
            let mut query: BTreeMap<String, String> = context.query.clone().into_iter().collect();
            query.insert("per_page".to_owned(), per_page.to_string());
            query.insert("cursor".to_owned(), format!("v1_{}", last["id"]));
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&query)
                .finish();
            let path = match &hook {
                Hook::App => "/app/hook/deliveries".to_owned(),
                Hook::Repository(repo, hook) => format!("/repos/{repo}/hooks/{hook}/deliveries"),
                Hook::Organization(org, hook) => format!("/orgs/{org}/hooks/{hook}/deliveries"),
            };
            answer = answer.header(
                "link",
                format!(
                    "<{}{}{path}?{query}>; rel=\"next\"",
                    context.shared.base_url,
                    context.shared.flavor.prefix()
                ),
            );
        }
        return answer;
    }
    let delivery_id = context.number("delivery_id");
    let Some(delivery) = list
        .iter()
        .find(|delivery| delivery["id"] == delivery_id)
        .cloned()
    else {
        return Answer::error(404, "Not Found");
    };
    if id.ends_with("get-webhook-delivery") {
        return Answer::ok(200, delivery);
    }
    let seed = DeliverySeed {
        guid: delivery["guid"].as_str().unwrap_or_default().to_owned(),
        event: delivery["event"].as_str().unwrap_or_default().to_owned(),
        action: delivery["action"].as_str().map(str::to_owned),
        status_code: 200,
        payload: delivery["request"]["payload"].clone(),
    };
    insert_delivery(context.shared, state, &hook, &seed, true, context.now);
    Answer::ok(202, json!({}))
}

/// Adds a delivery built from the description's example; returns its id.
pub(crate) fn add_delivery(
    shared: &Shared,
    hook: &Hook,
    seed: &DeliverySeed,
    redelivery: bool,
) -> u64 {
    let mut state = shared.lock();
    let now = shared.now(&state);
    insert_delivery(shared, &mut state, hook, seed, redelivery, now)
}

/// Adds a delivery sent at `sent_at`, listed among the others by time (newest first); returns its id.
pub(crate) fn add_delivery_at(
    shared: &Shared,
    hook: &Hook,
    seed: &DeliverySeed,
    sent_at: SystemTime,
) -> u64 {
    let mut state = shared.lock();
    let id = insert_delivery(shared, &mut state, hook, seed, false, sent_at);
    let list = state
        .deliveries
        .get_mut(hook)
        .expect("the delivery was just added");
    let delivery = list.remove(0);
    // One format (RFC 3339 in UTC, whole seconds): the text's order is the time's.
    let sent = delivery["delivered_at"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let at = list
        .iter()
        .position(|other| other["delivered_at"].as_str().unwrap_or_default() <= sent.as_str())
        .unwrap_or(list.len());
    list.insert(at, delivery);
    id
}

fn insert_delivery(
    shared: &Shared,
    state: &mut State,
    hook: &Hook,
    seed: &DeliverySeed,
    redelivery: bool,
    now: SystemTime,
) -> u64 {
    let id = next_id(state);
    let description = Description::get(shared.flavor);
    let operation = description
        .operations
        .iter()
        .find(|operation| operation.id == "apps/get-webhook-delivery")
        .expect("a vendored operation");
    let mut delivery = description.example(operation, 200).clone();
    delivery["id"] = json!(id);
    delivery["guid"] = json!(seed.guid);
    delivery["delivered_at"] = json!(rfc3339(now));
    delivery["redelivery"] = json!(redelivery);
    delivery["status"] = json!(if seed.status_code / 100 == 2 {
        "OK".to_owned()
    } else {
        format!("Invalid HTTP Response: {}", seed.status_code)
    });
    delivery["status_code"] = json!(seed.status_code);
    delivery["event"] = json!(seed.event);
    delivery["action"] = json!(seed.action);
    delivery["throttled_at"] = Value::Null;
    delivery["request"]["headers"]["X-GitHub-Delivery"] = json!(seed.guid);
    delivery["request"]["headers"]["X-GitHub-Event"] = json!(seed.event);
    delivery["request"]["payload"] = seed.payload.clone();
    state
        .deliveries
        .entry(hook.clone())
        .or_default()
        .insert(0, delivery);
    id
}

/// GitHub refuses requests without a `User-Agent`; booty must also name the API version and media type.
fn header_problem(state: &mut State, request: &Req) -> Option<Answer> {
    let problem = if request.header("user-agent").is_none_or(str::is_empty) {
        Some((
            403,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).",
        ))
    } else if request.header("x-github-api-version") != Some("2022-11-28") {
        Some((
            400,
            "The API version is missing or not supported: send X-GitHub-Api-Version: 2022-11-28.",
        ))
    } else if request.header("accept") != Some("application/vnd.github+json") {
        Some((400, "booty sends Accept: application/vnd.github+json"))
    } else {
        None
    };
    let (status, message) = problem?;
    state
        .violations
        .push(format!("{} {}: {message}", request.method, request.path));
    Some(Answer::error(status, message))
}

/// The caller, and the App whose JWT it presented (the test App's id for any other caller).
fn authenticate(
    shared: &Shared,
    state: &mut State,
    request: &Req,
    need: Need,
    now: SystemTime,
) -> Result<(Caller, u64), Answer> {
    let header = request.header("authorization");
    let credential = || {
        let value = header.ok_or_else(|| Answer::error(401, "Requires authentication"))?;
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .or_else(|| value.strip_prefix("token "))
            .ok_or_else(|| Answer::error(401, "Bad credentials"))
    };
    match need {
        Need::Nothing => {
            if header.is_some() {
                // The code is the credential: sending one besides it only spreads it.
                state.violations.push(format!(
                    "{} {}: credentials sent to an endpoint that takes none",
                    request.method, request.path
                ));
            }
            Ok((Caller::Anonymous, APP_ID))
        }
        Need::Jwt => {
            let credential = credential()?;
            if !jwt::looks_like_jwt(credential) {
                return Err(Answer::error(401, jwt::UNDECODABLE));
            }
            let apps: Vec<&jwt::AppIdentity> = std::iter::once(&shared.app)
                .chain(state.created.iter().map(|(_, identity)| identity))
                .collect();
            let app_id = jwt::verify(credential, &apps, now)
                .map_err(|message| Answer::error(401, message))?;
            Ok((Caller::App, app_id))
        }
        Need::Token(..) => token_caller(state, credential()?, now)
            .map(|caller| (caller, APP_ID))
            .ok_or_else(|| Answer::error(401, "Bad credentials")),
    }
}

/// The caller a token authenticates, if it is the PAT or a live, replicated installation token.
fn token_caller(state: &State, token: &str, now: SystemTime) -> Option<Caller> {
    if state.pat.as_deref() == Some(token) {
        return Some(Caller::Pat);
    }
    let index = *state.tokens.get(token)?;
    let mint = &state.mints[index];
    let replicated = mint.issued_at + state.replication_delay <= now;
    (now < mint.expires_at && replicated).then_some(Caller::Installation(index))
}

/// Whether the caller may reach what the parameters name: GitHub answers 404 for a repository a token is
/// not narrowed to (as for one that does not exist), and 403 naming the permission a token lacks.
fn access(
    state: &State,
    caller: &Caller,
    need: Need,
    parameters: &HashMap<String, String>,
) -> Result<(), Answer> {
    let Need::Token(permission, level) = need else {
        return Ok(());
    };
    let not_found = || Answer::error(404, "Not Found");
    let repository = match (parameters.get("owner"), parameters.get("repo")) {
        (Some(owner), Some(repo)) => Some(
            state
                .repos
                .get(&format!("{owner}/{repo}"))
                .ok_or_else(not_found)?,
        ),
        _ => None,
    };
    let Caller::Installation(index) = caller else {
        return Ok(());
    };
    let mint = &state.mints[*index];
    if let Some(repo) = repository {
        let narrowed_out = mint
            .repositories
            .as_ref()
            .is_some_and(|names| !names.contains(&repo.name));
        if repo.installation != Some(mint.installation) || narrowed_out {
            return Err(not_found());
        }
    }
    if let Some(org) = parameters.get("org") {
        let account = state
            .installations
            .get(&mint.installation)
            .map(|i| i.account.as_str());
        if account != Some(org.as_str()) {
            return Err(not_found());
        }
    }
    let has = mint.permissions.get(permission).map_or(0, |has| rank(has));
    if has < rank(level) {
        return Err(
            Answer::error(403, "Resource not accessible by integration").header(
                "x-accepted-github-permissions",
                format!("{permission}={level}"),
            ),
        );
    }
    Ok(())
}

/// Refuses every request while a rate limit a fault started lasts, and starts the ones injected now.
fn rate_limited(state: &mut State, id: &str, now: SystemTime) -> Option<Answer> {
    if let Some(fault) = take_fault(state, id, |fault| match fault {
        Fault::PrimaryLimit { .. } | Fault::SecondaryLimit { .. } => Some(fault.clone()),
        _ => None,
    }) {
        match fault {
            Fault::PrimaryLimit { reset_in } => state.primary_until = Some(now + reset_in),
            Fault::SecondaryLimit { retry_after } => {
                let lasts = Duration::from_secs(retry_after.unwrap_or(60));
                state.secondary_until = Some((now + lasts, retry_after.is_some()));
            }
            _ => {}
        }
    }
    if let Some(until) = state.primary_until.filter(|until| now < *until) {
        let reset = jwt::seconds(until);
        state.remaining = 0;
        return Some(
            Answer::error(403, "API rate limit exceeded for installation. If you reach out to GitHub Support for help, please include the request ID.")
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset", reset.to_string()),
        );
    }
    if let Some((until, with_retry_after)) = state.secondary_until.filter(|(until, _)| now < *until)
    {
        let seconds = until
            .duration_since(now)
            .unwrap_or_default()
            .as_secs()
            .max(1);
        return Some(if with_retry_after {
            Answer::error(429, SECONDARY_MESSAGE).header("retry-after", seconds.to_string())
        } else {
            Answer::error(403, SECONDARY_MESSAGE)
        });
    }
    if state.primary_until.is_some() {
        state.primary_until = None;
        state.remaining = 5000;
    }
    None
}

/// Takes one use of the first fault for `id` (or `*`) that `pick` accepts.
fn take_fault<T>(state: &mut State, id: &str, pick: impl Fn(&Fault) -> Option<T>) -> Option<T> {
    let at = state
        .faults
        .iter()
        .position(|(target, fault, _)| (target == id || target == "*") && pick(fault).is_some())?;
    let picked = pick(&state.faults[at].1);
    state.faults[at].2 -= 1;
    if state.faults[at].2 == 0 {
        state.faults.remove(at);
    }
    picked
}

/// Checks query parameters and the JSON body against the operation's schemas.
fn check_request(
    state: &mut State,
    operation: &Operation,
    parameters: &HashMap<String, String>,
    request: &Req,
) -> Result<Value, Answer> {
    let mut errors = Vec::new();
    for (name, value) in url::form_urlencoded::parse(request.query.as_bytes()) {
        let Some(schema) = operation.query.get(name.as_ref()) else {
            errors.push(format!(
                "query parameter {name:?} is not a parameter of {}",
                operation.id
            ));
            continue;
        };
        let typed = match schema["type"].as_str() {
            Some("integer") => value
                .parse::<i64>()
                .map_or_else(|_| json!(value), |number| json!(number)),
            Some("boolean") => value
                .parse::<bool>()
                .map_or_else(|_| json!(value), |flag| json!(flag)),
            _ => json!(value),
        };
        schema::validate(schema, &typed, &format!("query {name}"), &mut errors);
    }
    for (name, schema) in &operation.path_parameters {
        let value = parameters.get(name).map_or("", String::as_str);
        let typed = match schema["type"].as_str() {
            // GitHub has no route for a number that is not one.
            Some("integer") => match value.parse::<i64>() {
                Ok(number) => json!(number),
                Err(_) => return Err(Answer::error(404, "Not Found")),
            },
            _ => json!(value),
        };
        schema::validate(schema, &typed, &format!("path {name}"), &mut errors);
    }
    let body = if request.body.is_empty() {
        if matches!(operation.request, Some((true, _))) {
            errors.push("the operation needs a JSON body and got none".to_owned());
        }
        Value::Null
    } else {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            state
                .violations
                .push(format!("{}: the body is not JSON", operation.id));
            return Err(Answer::error(400, "Problems parsing JSON"));
        };
        match &operation.request {
            Some((_, schema)) => schema::validate(schema, &body, "body", &mut errors),
            None => errors.push(format!("{} takes no body", operation.id)),
        }
        body
    };
    if errors.is_empty() {
        return Ok(body);
    }
    for error in &errors {
        state.violations.push(format!("{}: {error}", operation.id));
    }
    Err(Answer::error(
        422,
        &format!("Invalid request.\n\n{}", errors.join("\n")),
    ))
}

/// Checks an answer against the description: a success has the example's shape, an error the documented
/// error schema. A mismatch is the fake's bug: recorded, and answered 500.
fn check_answer(
    shared: &Shared,
    description: &Description,
    operation: &Operation,
    answer: Answer,
) -> Answer {
    let mut errors = Vec::new();
    if (200..300).contains(&answer.status) {
        let example = description.example(operation, answer.status);
        schema::same_shape(example, &answer.body, "$", &mut errors);
    } else if let Some(error_schema) = description.error_schema(operation, answer.status) {
        schema::validate(error_schema, &answer.body, "$", &mut errors);
    }
    if errors.is_empty() {
        return answer;
    }
    let mut state = shared.lock();
    for error in &errors {
        state.violations.push(format!(
            "the fake's {} answer {}: {error}",
            operation.id, answer.status
        ));
    }
    Answer::error(
        500,
        &format!(
            "booty-testkit: the fake's answer does not match GitHub's description: {}",
            errors.join("; ")
        ),
    )
}

/// The common headers, and the body as bytes.
fn finish(shared: &Shared, answer: Answer) -> Reply {
    let mut state = shared.lock();
    let now = shared.now(&state);
    let limited = answer
        .headers
        .iter()
        .any(|(name, _)| name == "x-ratelimit-remaining");
    if !limited {
        state.remaining = state.remaining.saturating_sub(1);
    }
    let mut headers = vec![
        (
            "content-type".to_owned(),
            "application/json; charset=utf-8".to_owned(),
        ),
        ("date".to_owned(), http_date(now)),
        (
            "x-github-api-version-selected".to_owned(),
            "2022-11-28".to_owned(),
        ),
        (
            "x-github-request-id".to_owned(),
            format!("FAKE:{:X}", state.requests.len()),
        ),
    ];
    if !limited {
        let reset = jwt::seconds(now) + 3600;
        headers.extend([
            ("x-ratelimit-limit".to_owned(), "5000".to_owned()),
            (
                "x-ratelimit-remaining".to_owned(),
                state.remaining.to_string(),
            ),
            ("x-ratelimit-reset".to_owned(), reset.to_string()),
            (
                "x-ratelimit-used".to_owned(),
                (5000 - state.remaining).to_string(),
            ),
            ("x-ratelimit-resource".to_owned(), "core".to_owned()),
        ]);
    }
    headers.extend(answer.headers);
    Reply {
        status: answer.status,
        headers,
        body: answer.body.to_string().into_bytes(),
    }
}

fn violation(shared: &Shared, message: String) {
    shared.lock().violations.push(message);
}

/// A git request: Basic credentials (`x-access-token:TOKEN`, or the PAT as the password), the repository
/// in the token's reach, `contents` read to fetch and write to push.
async fn git_request(
    shared: &Shared,
    request: &Req,
    repository: &str,
    service: git::Service,
) -> (Reply, String, Caller) {
    let operation = match service {
        git::Service::UploadPack => "git-upload-pack",
        git::Service::ReceivePack => "git-receive-pack",
    }
    .to_owned();
    let plain = |status: u16, message: &str, extra: Option<(&str, &str)>| {
        let mut headers = vec![("content-type".to_owned(), "text/plain".to_owned())];
        if let Some((name, value)) = extra {
            headers.push((name.to_owned(), value.to_owned()));
        }
        Reply {
            status,
            headers,
            body: message.as_bytes().to_vec(),
        }
    };
    let (caller, path) = {
        let state = shared.lock();
        let now = shared.now(&state);
        let password = request
            .header("authorization")
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok())
            .and_then(|pair| {
                pair.split_once(':')
                    .map(|(_, password)| password.to_owned())
            });
        let Some(password) = password else {
            let challenge = Some(("www-authenticate", "Basic realm=\"GitHub\""));
            return (
                plain(401, "authentication required", challenge),
                operation,
                Caller::Anonymous,
            );
        };
        let Some(caller) = token_caller(&state, &password, now) else {
            let challenge = Some(("www-authenticate", "Basic realm=\"GitHub\""));
            return (
                plain(401, "Invalid username or token.", challenge),
                operation,
                Caller::Refused,
            );
        };
        let Some(repo) = state.repos.get(repository) else {
            return (plain(404, "Repository not found.", None), operation, caller);
        };
        if let Caller::Installation(index) = caller {
            let mint = &state.mints[index];
            let narrowed_out = mint
                .repositories
                .as_ref()
                .is_some_and(|names| !names.contains(&repo.name));
            if repo.installation != Some(mint.installation) || narrowed_out {
                return (plain(404, "Repository not found.", None), operation, caller);
            }
            let needed = if service == git::Service::ReceivePack {
                "write"
            } else {
                "read"
            };
            let has = mint.permissions.get("contents").map_or(0, |has| rank(has));
            if has < rank(needed) {
                let message = format!("Permission to {repository}.git denied to {APP_SLUG}[bot].");
                return (plain(403, &message, None), operation, caller);
            }
        }
        (caller, request.path.clone())
    };
    match git::serve(
        &shared.root,
        &request.method,
        &path,
        &request.query,
        &request.headers,
        request.body.clone(),
    )
    .await
    {
        Ok(answer) => (
            Reply {
                status: answer.status,
                headers: answer.headers,
                body: answer.body,
            },
            operation,
            caller,
        ),
        Err(err) => (
            plain(500, &format!("git http-backend: {err}"), None),
            operation,
            caller,
        ),
    }
}
