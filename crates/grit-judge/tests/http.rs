//! The OpenAI judge against a real HTTP server on loopback that answers from a script and
//! records what it was asked.

use grit_data::rewards::{Judge, JudgeQuery, Mode};
use grit_judge::{OpenAiJudge, OpenAiJudgeConfig};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the server answers to one request.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    /// A chat completion whose message is `content`.
    fn content(content: &str) -> Self {
        let body = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]});
        Self::status(200, &body.to_string())
    }

    fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// One request as the server read it (header names lower-cased).
#[derive(Clone, Debug)]
struct Request {
    path: String,
    headers: HashMap<String, String>,
    body: Value,
}

impl Request {
    fn prompt(&self) -> &str {
        self.body["messages"][0]["content"].as_str().unwrap()
    }
}

type Handler = dyn Fn(usize, &Request) -> Reply + Send + Sync;

/// A minimal HTTP/1.1 server: one request per connection, answered with `Connection: close`.
struct Server {
    base_url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    /// The most requests the server was handling at once (counted from reading a request to
    /// starting its reply, so a client's next request cannot overlap a finished one).
    max_in_flight: Arc<AtomicUsize>,
}

impl Server {
    /// A server answering the n-th request (from 0) with `handler(n, request)`.
    fn start(handler: impl Fn(usize, &Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (log, max) = (requests.clone(), max_in_flight.clone());
        thread::spawn(move || {
            let in_flight = Arc::new(AtomicUsize::new(0));
            for stream in listener.incoming() {
                let (handler, log, max, in_flight) =
                    (handler.clone(), log.clone(), max.clone(), in_flight.clone());
                thread::spawn(move || {
                    let mut stream = stream.unwrap();
                    let request = read_request(&mut stream);
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(request.clone());
                        log.len() - 1
                    };
                    let reply = handler(n, &request);
                    thread::sleep(reply.delay);
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    // The client may have given up (timeout).
                    let _ = write_reply(&mut stream, &reply);
                });
            }
        });
        Self {
            base_url,
            requests,
            max_in_flight,
        }
    }

    /// A server answering the n-th request with `replies[n]`, and 500 after the script.
    fn scripted(replies: Vec<Reply>) -> Self {
        let replies = Mutex::new(replies.into_iter().map(Some).collect::<Vec<_>>());
        Self::start(move |n, _| {
            let mut replies = replies.lock().unwrap();
            let next = replies.get_mut(n).and_then(Option::take);
            next.unwrap_or_else(|| Reply::status(500, "not in the script"))
        })
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn config(&self, mode: Mode) -> OpenAiJudgeConfig {
        OpenAiJudgeConfig {
            base_url: self.base_url.clone(),
            model: "judge-model".into(),
            timeout_s: 5.0,
            backoff_ms: 1,
            mode,
            ..OpenAiJudgeConfig::default()
        }
    }
}

fn read_request(stream: &mut TcpStream) -> Request {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap().to_owned();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.insert(name.to_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers["content-length"].parse().unwrap();
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    Request {
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap(),
    }
}

fn write_reply(stream: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(reply.body.as_bytes())?;
    stream.flush()
}

fn query(prediction: &str) -> JudgeQuery {
    JudgeQuery {
        question: "How many dogs are in the picture?".into(),
        reference: "2".into(),
        prediction: prediction.into(),
    }
}

fn judge(config: OpenAiJudgeConfig) -> OpenAiJudge {
    OpenAiJudge::with_api_key(config, "test-key".into()).unwrap()
}

fn error_of(result: Result<f64, grit_data::rewards::RewardError>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn fixed_mode_sends_the_judge_prompt_at_temperature_zero() {
    let server = Server::scripted(vec![Reply::content("{score: 0.5}")]);
    let query = query("two dogs");
    let score = judge(server.config(Mode::Fixed)).judge(&query).unwrap();
    assert_eq!(score, 0.5);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.headers["authorization"], "Bearer test-key");
    assert_eq!(request.headers["content-type"], "application/json");
    let expected = json!({
        "model": "judge-model",
        "messages": [{"role": "user", "content": query.prompt()}],
        "temperature": 0.0,
    });
    assert_eq!(request.body, expected);
}

#[test]
fn compat_mode_sends_no_temperature_and_reads_one_out_of_one_as_eleven() {
    let server = Server::scripted(vec![Reply::content("Score: 1/1")]);
    let score = judge(server.config(Mode::Compat))
        .judge(&query("2"))
        .unwrap();
    assert_eq!(score, 11.0);
    let body = &server.requests()[0].body;
    assert_eq!(body["model"], "judge-model");
    assert!(body.get("temperature").is_none(), "{body}");
}

#[test]
fn an_empty_key_sends_no_authorization_header() {
    let server = Server::scripted(vec![Reply::content("{score: 1}")]);
    let mut judge = OpenAiJudge::with_api_key(server.config(Mode::Fixed), String::new()).unwrap();
    assert_eq!(judge.judge(&query("2")).unwrap(), 1.0);
    assert!(!server.requests()[0].headers.contains_key("authorization"));
}

#[test]
fn fixed_mode_rejects_a_reply_without_a_score_at_once() {
    let server = Server::scripted(vec![Reply::content("I do not know.")]);
    let error = error_of(judge(server.config(Mode::Fixed)).judge(&query("2")));
    assert!(error.starts_with("judge: no score"), "{error}");
    assert!(error.contains("after 1 try"), "{error}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn compat_mode_retries_any_failure_three_times_without_waiting() {
    let server = Server::scripted(vec![
        Reply::content("I do not know."),
        Reply::status(400, "bad request"),
        Reply::content("{score: 1}"),
    ]);
    let config = OpenAiJudgeConfig {
        backoff_ms: 10_000,
        ..server.config(Mode::Compat)
    };
    let start = Instant::now();
    assert_eq!(judge(config).judge(&query("2")).unwrap(), 1.0);
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(server.requests().len(), 3);

    let failing = Server::scripted(Vec::new());
    let error = error_of(judge(failing.config(Mode::Compat)).judge(&query("2")));
    assert!(error.contains("after 3 tries"), "{error}");
    assert_eq!(failing.requests().len(), 3);
}

#[test]
fn server_errors_are_retried_with_doubling_back_off() {
    let server = Server::scripted(vec![
        Reply::status(500, "oops"),
        Reply::status(503, "busy"),
        Reply::content("{score: 0.25}"),
    ]);
    let config = OpenAiJudgeConfig {
        backoff_ms: 50,
        ..server.config(Mode::Fixed)
    };
    let start = Instant::now();
    assert_eq!(judge(config).judge(&query("2")).unwrap(), 0.25);
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn the_last_server_error_is_reported_with_the_number_of_tries() {
    let server = Server::start(|_, _| Reply::status(502, "bad gateway"));
    let config = OpenAiJudgeConfig {
        max_retries: 2,
        ..server.config(Mode::Fixed)
    };
    let error = error_of(judge(config).judge(&query("2")));
    assert!(error.contains("HTTP 502"), "{error}");
    assert!(error.contains("bad gateway"), "{error}");
    assert!(error.contains("after 3 tries"), "{error}");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let server = Server::scripted(vec![
        Reply::status(429, "slow down").header("Retry-After", "1"),
        Reply::content("{score: 1}"),
    ]);
    let start = Instant::now();
    assert_eq!(
        judge(server.config(Mode::Fixed))
            .judge(&query("2"))
            .unwrap(),
        1.0
    );
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_bad_request_is_not_retried() {
    let server = Server::scripted(vec![Reply::status(
        400,
        r#"{"error": {"message": "unknown model"}}"#,
    )]);
    let error = error_of(judge(server.config(Mode::Fixed)).judge(&query("2")));
    assert!(error.contains("HTTP 400"), "{error}");
    assert!(error.contains("unknown model"), "{error}");
    assert!(error.contains("after 1 try"), "{error}");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_slow_server_times_out_after_the_retries() {
    let server = Server::start(|_, _| Reply::content("{score: 1}").after(Duration::from_secs(2)));
    let config = OpenAiJudgeConfig {
        timeout_s: 0.2,
        max_retries: 1,
        ..server.config(Mode::Fixed)
    };
    let start = Instant::now();
    let error = error_of(judge(config).judge(&query("2")));
    assert!(start.elapsed() < Duration::from_millis(1500));
    assert!(error.contains("timeout"), "{error}");
    assert!(error.contains("after 2 tries"), "{error}");
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn the_cache_answers_later_judges_and_survives_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("judge-cache.jsonl");
    let with_cache = |server: &Server, mode| OpenAiJudgeConfig {
        cache: Some(path.clone()),
        ..server.config(mode)
    };

    let first = Server::scripted(vec![
        Reply::content("{score: 1}"),
        Reply::status(400, "rejected"),
    ]);
    let mut judge_1 = judge(with_cache(&first, Mode::Fixed));
    assert_eq!(judge_1.judge(&query("2")).unwrap(), 1.0);
    assert!(judge_1.judge(&query("3")).is_err());
    assert_eq!(judge_1.judge(&query("2")).unwrap(), 1.0);
    assert_eq!(first.requests().len(), 2);

    // A new judge on the same file: the success is cached, the failure is asked again.
    let second = Server::scripted(vec![Reply::content("{score: 0}")]);
    let mut judge_2 = judge(with_cache(&second, Mode::Fixed));
    assert_eq!(judge_2.judge(&query("2")).unwrap(), 1.0);
    assert_eq!(judge_2.judge(&query("3")).unwrap(), 0.0);
    assert_eq!(second.requests().len(), 1);

    // Compat keeps no cache: the official judge asks once per completion.
    let compat = Server::scripted(vec![]);
    let error = OpenAiJudge::with_api_key(with_cache(&compat, Mode::Compat), String::new()).err();
    assert!(error.unwrap().to_string().contains("fixed-mode feature"));

    // A crash in the middle of a write leaves a torn last line.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(br#"{"model":"judge-model","mode":"fix"#)
        .unwrap();
    drop(file);
    let third = Server::scripted(vec![Reply::content("{score: 0.75}")]);
    let mut judge_3 = judge(with_cache(&third, Mode::Fixed));
    assert_eq!(judge_3.judge(&query("2")).unwrap(), 1.0);
    assert_eq!(judge_3.judge(&query("3")).unwrap(), 0.0);
    assert_eq!(judge_3.judge(&query("4")).unwrap(), 0.75);
    assert_eq!(third.requests().len(), 1);

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n'));
    let entries: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2]["prediction"], "4");
    assert_eq!(entries[2]["reply"], "{score: 0.75}");
    assert_eq!(entries[2]["score"], 0.75);
}

#[test]
fn compat_asks_every_completion_repeats_included() {
    // A non-zero temperature answers the same question differently: compat asks each time.
    let server = Server::start(|n, _| Reply::content(&format!("score: 0.{n}")));
    let queries: Vec<JudgeQuery> = ["2", "2", "3", "2"].map(query).to_vec();
    let results = judge(server.config(Mode::Compat)).judge_batch(&queries);
    assert_eq!(server.requests().len(), 4);
    let mut scores: Vec<f64> = results.into_iter().map(Result::unwrap).collect();
    scores.sort_by(f64::total_cmp);
    assert_eq!(scores, [0.0, 0.1, 0.2, 0.3]);
}

#[test]
fn a_batch_keeps_its_order_and_at_most_concurrency_requests_in_flight() {
    // The prediction is the score; "?" gets a reply without one.
    let server = Server::start(|_, request| {
        let prediction = request.prompt().rsplit("answer: ").next().unwrap();
        let reply = match prediction {
            "?" => "I cannot tell.".to_owned(),
            score => format!("{{score: {score}}}"),
        };
        Reply::content(&reply).after(Duration::from_millis(100))
    });
    let config = OpenAiJudgeConfig {
        concurrency: 2,
        ..server.config(Mode::Fixed)
    };
    let queries: Vec<JudgeQuery> = ["0.1", "0.2", "?", "0.1", "0.3", "0.4", "0.2"]
        .map(query)
        .to_vec();
    let results = judge(config).judge_batch(&queries);
    assert_eq!(results.len(), queries.len());
    let expected = [
        Some(0.1),
        Some(0.2),
        None,
        Some(0.1),
        Some(0.3),
        Some(0.4),
        Some(0.2),
    ];
    for (result, expected) in results.into_iter().zip(expected) {
        match expected {
            Some(score) => assert_eq!(result.unwrap(), score),
            None => assert!(error_of(result).contains("no score")),
        }
    }
    assert_eq!(server.requests().len(), 5);
    assert_eq!(server.max_in_flight.load(Ordering::SeqCst), 2);
}
