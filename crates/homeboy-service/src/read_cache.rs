//! Answers of the hot run readers (`GET /runs`, `/audit/runs`, `/bench/runs`, `/runs/:id/findings`) kept as
//! serialised envelopes while the observation store does not change.
//!
//! Every write to the store, by this process or any other sharing the file, moves its generation
//! ([`homeboy_observations::ObservationStore::generation`], counted up in the same transaction as the write).
//! A reader looks the generation up first (one read transaction, one lookup), answers from here when an answer
//! of that request was kept at that generation, and otherwise computes it and keeps it under the generation it
//! read *before* computing: a write that lands in between only makes the kept answer newer than its label, so
//! the next reader, seeing a newer generation, computes again. Answers that can change without a write (a page
//! with a running run, whose `status_note` follows its owner process) are never kept. The cache holds one
//! generation at a time and is bounded in entries and bytes; when it is full it starts over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Largest answer kept (bigger pages are rare and computed each time).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Most bytes kept over all answers.
const MAX_TOTAL_BYTES: usize = 32 * 1024 * 1024;
/// Most answers kept.
const MAX_ANSWERS: usize = 4096;

/// Serialised answers of one store generation, by request.
#[derive(Default)]
pub(crate) struct ReadCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    generation: u64,
    answers: HashMap<String, Arc<[u8]>>,
    bytes: usize,
}

impl ReadCache {
    /// The answer kept for `key` at `generation`, if any.
    pub(crate) fn get(&self, generation: u64, key: &str) -> Option<Arc<[u8]>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.generation != generation {
            return None;
        }
        state.answers.get(key).cloned()
    }

    /// Keeps `answer` for `key`, computed after reading `generation`. An answer of an older generation than
    /// the ones kept is dropped; a newer generation replaces them all.
    pub(crate) fn put(&self, generation: u64, key: String, answer: Arc<[u8]>) {
        if answer.len() > MAX_ANSWER_BYTES {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if generation < state.generation {
            return;
        }
        if generation > state.generation
            || state.answers.len() >= MAX_ANSWERS
            || state.bytes + answer.len() > MAX_TOTAL_BYTES
        {
            state.answers.clear();
            state.bytes = 0;
            state.generation = generation;
        }
        state.bytes += answer.len();
        if let Some(old) = state.answers.insert(key, answer) {
            state.bytes -= old.len();
        }
    }
}

/// The cache key of a request: its path and its decoded query, in the order sent.
pub(crate) fn request_key(req: &crate::ApiRequest) -> String {
    let mut key = String::with_capacity(req.path.len() + 32);
    key.push_str(&req.path);
    for (name, value) in &req.query {
        // Separators that cannot occur unescaped in a decoded pair's framing: lengths make the key unambiguous.
        key.push_str(&format!(
            "\u{0}{}:{name}{}:{value}",
            name.len(),
            value.len()
        ));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn an_answer_is_served_only_at_its_generation() {
        let cache = ReadCache::default();
        cache.put(3, "a".into(), bytes("three"));
        assert_eq!(cache.get(3, "a").as_deref(), Some(&b"three"[..]));
        assert!(cache.get(4, "a").is_none(), "a newer store misses");
        assert!(cache.get(2, "a").is_none());
        cache.put(2, "b".into(), bytes("stale"));
        assert!(cache.get(2, "b").is_none(), "an older answer is not kept");
        assert!(cache.get(3, "b").is_none());
        cache.put(5, "b".into(), bytes("five"));
        assert!(
            cache.get(3, "a").is_none(),
            "a newer generation drops the old answers"
        );
        assert_eq!(cache.get(5, "b").as_deref(), Some(&b"five"[..]));
    }

    #[test]
    fn it_stays_within_its_bounds() {
        let cache = ReadCache::default();
        let big: Arc<[u8]> = vec![b'x'; MAX_ANSWER_BYTES + 1].into();
        cache.put(1, "big".into(), big);
        assert!(cache.get(1, "big").is_none());
        let page: Arc<[u8]> = vec![b'x'; MAX_ANSWER_BYTES].into();
        for i in 0..(MAX_TOTAL_BYTES / MAX_ANSWER_BYTES + 5) {
            cache.put(1, format!("p{i}"), page.clone());
            let state = cache.state.lock().unwrap();
            assert!(state.bytes <= MAX_TOTAL_BYTES && state.answers.len() <= MAX_ANSWERS);
            assert_eq!(
                state.bytes,
                state.answers.values().map(|a| a.len()).sum::<usize>()
            );
        }
    }

    #[test]
    fn keys_tell_queries_apart() {
        let a = crate::ApiRequest::get("/runs?limit=5&kind=lint");
        let b = crate::ApiRequest::get("/runs?limit=5&kind=test");
        let c = crate::ApiRequest::get("/runs?limit=5%26kind%3Dlint");
        let keys = [request_key(&a), request_key(&b), request_key(&c)];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[2]);
        assert_eq!(
            request_key(&a),
            request_key(&crate::ApiRequest::get("/runs?limit=5&kind=lint"))
        );
    }
}
