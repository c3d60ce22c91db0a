//! The judge as a chat-completions request: one user message holding the judge prompt.

use crate::cache::Cache;
use crate::config::JudgeError;
use grit_data::rewards::{
    Judge, JudgeQuery, Mode, RewardError, parse_score_compat, parse_score_fixed,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

/// Tries in compat mode, none waiting, as the official code.
const COMPAT_TRIES: u32 = 3;
/// The longest wait a server's `Retry-After` can ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How much of an error reply's body goes into the error message.
const ERROR_BODY_CHARS: usize = 300;

/// An OpenAI-compatible chat-completions judge, as a run config writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiJudgeConfig {
    /// The API root; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// The judge model's name, as the API knows it.
    pub model: String,
    /// The environment variable holding the API key. It must be set; set to an empty value
    /// (a local server), no `Authorization` header is sent.
    pub api_key_env: String,
    /// Fixed mode's sampling temperature (`None`: the API's default). Compat sends none.
    pub temperature: Option<f64>,
    /// The limit on one request, reply included, in seconds.
    pub timeout_s: f64,
    /// Fixed mode: retries after the first try (compat: 3 tries in all).
    pub max_retries: u32,
    /// Fixed mode: the wait before the first retry, doubled before each next one, in
    /// milliseconds (compat retries at once).
    pub backoff_ms: u64,
    /// The most requests in flight at once ([`Judge::judge_batch`]).
    pub concurrency: usize,
    /// Fixed mode: a file keeping successful replies across runs (JSON lines), keyed by model,
    /// question, reference and prediction (`None`: the run's default, see
    /// [`JudgeConfig::build`]). Compat has none: the official judge asks once per completion.
    ///
    /// [`JudgeConfig::build`]: crate::JudgeConfig::build
    pub cache: Option<PathBuf>,
    /// Compat or fixed behaviour (see the crate docs); [`JudgeConfig::build`] sets the run's.
    ///
    /// [`JudgeConfig::build`]: crate::JudgeConfig::build
    pub mode: Mode,
}

impl Default for OpenAiJudgeConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_owned(),
            model: "gpt-4o".to_owned(),
            api_key_env: "OPENAI_API_KEY".to_owned(),
            temperature: Some(0.0),
            timeout_s: 60.0,
            max_retries: 3,
            backoff_ms: 500,
            concurrency: 8,
            cache: None,
            mode: Mode::default(),
        }
    }
}

/// The judge behind an OpenAI-compatible API (see the crate docs for the two modes).
pub struct OpenAiJudge {
    config: OpenAiJudgeConfig,
    url: String,
    api_key: String,
    agent: ureq::Agent,
    cache: Option<Cache>,
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [Message<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Deserialize)]
struct ChatReply {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: ReplyMessage,
}

#[derive(Deserialize)]
struct ReplyMessage {
    content: Option<String>,
}

/// Why one try failed, and whether fixed mode tries again.
struct Failure {
    message: String,
    transient: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn permanent(message: String) -> Self {
        Self {
            message,
            transient: false,
            retry_after: None,
        }
    }

    fn transport(url: &str, error: ureq::Error) -> Self {
        use ureq::Error::{ConnectionFailed, HostNotFound, Io, Protocol, Timeout};
        Self {
            transient: matches!(
                error,
                ConnectionFailed | HostNotFound | Io(_) | Protocol(_) | Timeout(_)
            ),
            message: format!("request to {url} failed: {error}"),
            retry_after: None,
        }
    }
}

impl OpenAiJudgeConfig {
    /// Checks the values before any request; returns the request timeout.
    pub fn validate(&self) -> Result<Duration, JudgeError> {
        let invalid = |message: &str| Err(JudgeError::InvalidConfig(message.to_owned()));
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return invalid("base_url must start with http:// or https://");
        }
        if self.concurrency == 0 {
            return invalid("concurrency must be at least 1");
        }
        if self.temperature.is_some_and(|t| !t.is_finite()) {
            return invalid("temperature must be a finite number");
        }
        match Duration::try_from_secs_f64(self.timeout_s) {
            Ok(timeout) if !timeout.is_zero() => Ok(timeout),
            _ => invalid("timeout_s must be a positive number of seconds"),
        }
    }
}

impl OpenAiJudge {
    /// The judge, its API key read from the environment variable `config.api_key_env`.
    pub fn new(config: OpenAiJudgeConfig) -> Result<Self, JudgeError> {
        let api_key = std::env::var(&config.api_key_env).map_err(|e| match e {
            std::env::VarError::NotPresent => JudgeError::MissingApiKey(config.api_key_env.clone()),
            std::env::VarError::NotUnicode(_) => {
                JudgeError::ApiKeyNotUnicode(config.api_key_env.clone())
            }
        })?;
        Self::with_api_key(config, api_key)
    }

    /// The judge with the given API key (empty: no `Authorization` header); loads the cache.
    pub fn with_api_key(config: OpenAiJudgeConfig, api_key: String) -> Result<Self, JudgeError> {
        let timeout = config.validate()?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .new_agent();
        let cache = match (&config.cache, config.mode) {
            (Some(_), Mode::Compat) => {
                return Err(JudgeError::InvalidConfig(
                    "`cache` is a fixed-mode feature: the official judge asks once per completion, and compat does too".into(),
                ));
            }
            (Some(path), Mode::Fixed) => Some(Cache::open(path, &config.model, config.mode)?),
            (None, _) => None,
        };
        Ok(Self {
            url: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            config,
            api_key,
            agent,
            cache,
        })
    }

    fn cached(&self, query: &JudgeQuery) -> Option<f64> {
        self.cache.as_ref().and_then(|cache| cache.get(query))
    }

    /// The queries asked with at most `concurrency` in flight: reply and score, in order.
    fn ask_all(&self, queries: &[&JudgeQuery]) -> Vec<Result<(String, f64), RewardError>> {
        let next = AtomicUsize::new(0);
        let mut results: Vec<Option<_>> = queries.iter().map(|_| None).collect();
        thread::scope(|scope| {
            let workers: Vec<_> = (0..self.config.concurrency.min(queries.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(query) = queries.get(i) else {
                                return done;
                            };
                            done.push((i, self.ask(query)));
                        }
                    })
                })
                .collect();
            for worker in workers {
                let done = worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                for (i, result) in done {
                    results[i] = Some(result);
                }
            }
        });
        results
            .into_iter()
            .map(|result| result.expect("every query is asked"))
            .collect()
    }

    /// One query with the mode's retries: the reply and its score.
    fn ask(&self, query: &JudgeQuery) -> Result<(String, f64), RewardError> {
        let prompt = query.prompt();
        let request = ChatRequest {
            model: &self.config.model,
            messages: [Message {
                role: "user",
                content: &prompt,
            }],
            temperature: match self.config.mode {
                Mode::Compat => None,
                Mode::Fixed => self.config.temperature,
            },
        };
        let body = serde_json::to_string(&request).expect("a request serializes");
        let (tries, mut backoff) = match self.config.mode {
            Mode::Compat => (COMPAT_TRIES, Duration::ZERO),
            Mode::Fixed => (
                self.config.max_retries.saturating_add(1),
                Duration::from_millis(self.config.backoff_ms),
            ),
        };
        let mut tried = 0;
        loop {
            tried += 1;
            let failure = match self.send(&body) {
                Ok(reply) => match self.parse(&reply) {
                    Ok(score) => return Ok((reply, score)),
                    Err(RewardError::Judge(message)) => Failure::permanent(message),
                    Err(other) => Failure::permanent(other.to_string()),
                },
                Err(failure) => failure,
            };
            let retry = failure.transient || self.config.mode == Mode::Compat;
            if !retry || tried >= tries {
                let plural = if tried == 1 { "try" } else { "tries" };
                return Err(RewardError::Judge(format!(
                    "{} (after {tried} {plural})",
                    failure.message
                )));
            }
            thread::sleep(backoff.max(failure.retry_after.unwrap_or_default()));
            backoff = backoff.saturating_mul(2);
        }
    }

    /// One request: the reply's `choices[0].message.content`.
    fn send(&self, body: &str) -> Result<String, Failure> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        if !self.api_key.is_empty() {
            request = request.header("Authorization", format!("Bearer {}", self.api_key));
        }
        let mut response = request
            .send(body)
            .map_err(|e| Failure::transport(&self.url, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(|seconds| Duration::from_secs(seconds).min(MAX_RETRY_AFTER));
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::transport(&self.url, e))?;
        let excerpt: String = text.chars().take(ERROR_BODY_CHARS).collect();
        if !(200..300).contains(&status) {
            return Err(Failure {
                message: format!("HTTP {status} from {}: {excerpt}", self.url),
                transient: status == 429 || status >= 500,
                retry_after,
            });
        }
        let reply: ChatReply = serde_json::from_str(&text).map_err(|e| {
            Failure::permanent(format!(
                "a reply that is not a chat completion ({e}): {excerpt}"
            ))
        })?;
        reply
            .choices
            .into_iter()
            .next()
            .and_then(|choice| choice.message.content)
            .ok_or_else(|| {
                Failure::permanent(format!(
                    "a reply without choices[0].message.content: {excerpt}"
                ))
            })
    }

    fn parse(&self, reply: &str) -> Result<f64, RewardError> {
        match self.config.mode {
            Mode::Compat => parse_score_compat(reply),
            Mode::Fixed => parse_score_fixed(reply),
        }
    }
}

impl Judge for OpenAiJudge {
    fn judge(&mut self, query: &JudgeQuery) -> Result<f64, RewardError> {
        self.judge_batch(std::slice::from_ref(query))
            .pop()
            .expect("one result per query")
    }

    /// Fixed: asks each distinct query the cache cannot answer once, at most `concurrency` at a
    /// time; successful replies go to the cache. Compat: asks every query, repeats included, as
    /// the official trainer asks once per completion (the replies of a non-zero temperature
    /// differ).
    fn judge_batch(&mut self, queries: &[JudgeQuery]) -> Vec<Result<f64, RewardError>> {
        if self.config.mode == Mode::Compat {
            let all: Vec<&JudgeQuery> = queries.iter().collect();
            return self
                .ask_all(&all)
                .into_iter()
                .map(|answer| answer.map(|(_, score)| score))
                .collect();
        }
        let mut seen = HashSet::new();
        let missing: Vec<&JudgeQuery> = queries
            .iter()
            .filter(|query| self.cached(query).is_none() && seen.insert(*query))
            .collect();
        let answers = self.ask_all(&missing);
        let mut fresh = HashMap::new();
        for (query, answer) in missing.into_iter().zip(answers) {
            if let (Ok((reply, score)), Some(cache)) = (&answer, &mut self.cache) {
                cache.insert(query, reply, *score);
            }
            fresh.insert(query, answer.map(|(_, score)| score));
        }
        queries
            .iter()
            .map(|query| match fresh.get(query) {
                Some(result) => result.clone(),
                None => Ok(self.cached(query).expect("a query not asked is cached")),
            })
            .collect()
    }
}
