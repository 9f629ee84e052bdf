//! Pages of a sled tree read by range scans from a cursor, so a page costs what it holds
//! (plus a bounded number of records a filter skips), never a scan of everything before it.
//!
//! A cursor names a position between keys, not an offset: "after key k" or "before key k". It
//! is therefore stable under inserts and deletes — a record added before the cursor does not
//! shift the next page, one added after it shows up there — and every record present for the
//! whole walk is seen exactly once. On the wire it is opaque: a letter for the direction and the
//! key in base64url (without padding); any string that decodes is a valid position.

use std::ops::Bound;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::StoreError;

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Cursor {
    /// The first page.
    #[default]
    Start,
    /// The records after this key, ascending.
    After(Vec<u8>),
    /// The records before this key (the page before), still returned ascending.
    Before(Vec<u8>),
}

/// A cursor that is not one this collector hands out.
#[derive(Debug, thiserror::Error)]
#[error(
    "cursor `{0}` is not valid: pass the value of a previous response's `X-Next-Cursor` header \
     (or the `cursor` of its `Link` header) unchanged, or leave `cursor` out for the first page"
)]
pub struct BadCursor(pub String);

impl Cursor {
    /// The opaque string form.
    pub fn encode(&self) -> String {
        match self {
            Cursor::Start => String::new(),
            Cursor::After(key) => format!("a{}", URL_SAFE_NO_PAD.encode(key)),
            Cursor::Before(key) => format!("b{}", URL_SAFE_NO_PAD.encode(key)),
        }
    }

    /// Whether the page this cursor names can hold the record at `key` (strictly after or
    /// before the cursor's key).
    fn admits(&self, key: &[u8]) -> bool {
        match self {
            Cursor::Start => true,
            Cursor::Before(at) => key < at.as_slice(),
            Cursor::After(at) => key > at.as_slice(),
        }
    }

    /// Reads [`Cursor::encode`]'s form; the empty string is the first page.
    pub fn parse(raw: &str) -> Result<Cursor, BadCursor> {
        let bad = || BadCursor(raw.chars().take(64).collect());
        if raw.is_empty() {
            return Ok(Cursor::Start);
        }
        let (direction, key) = raw.split_at_checked(1).ok_or_else(bad)?;
        let key = URL_SAFE_NO_PAD.decode(key).map_err(|_| bad())?;
        match direction {
            "a" => Ok(Cursor::After(key)),
            "b" => Ok(Cursor::Before(key)),
            _ => Err(bad()),
        }
    }
}

/// One page, ascending in key order.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// What the page holds.
    pub items: Vec<T>,
    /// The page after this one, if any record follows.
    pub next: Option<Cursor>,
    /// The page before this one, if this is not the first.
    pub prev: Option<Cursor>,
}

/// The smallest key greater than every key starting with `prefix` (`None`: no bound).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Reads the page of `tree`'s keys under `prefix` that `from` names: at most `limit` records
/// `keep` maps to an item, examining at most `examine` records (at least `limit`).
pub(super) fn scan<T>(
    tree: &sled::Tree,
    prefix: &[u8],
    from: &Cursor,
    limit: usize,
    examine: usize,
    mut keep: impl FnMut(&[u8], &[u8]) -> Result<Option<T>, StoreError>,
) -> Result<Page<T>, StoreError> {
    let examine = examine.max(limit);
    let lower = Bound::Included(prefix.to_vec());
    let upper = prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
    let backward = matches!(from, Cursor::Before(_));
    let range = match from {
        Cursor::Start => (lower, upper),
        // A cursor outside the prefix (another filter's) clamps to it.
        Cursor::After(key) if key.as_slice() >= prefix => (Bound::Excluded(key.clone()), upper),
        Cursor::After(_) => (lower, upper),
        // Likewise: never past the prefix's end.
        Cursor::Before(key) => match &upper {
            Bound::Excluded(end) if key > end => (lower, upper),
            _ => (lower, Bound::Excluded(key.clone())),
        },
    };
    if let (Bound::Excluded(start) | Bound::Included(start), Bound::Excluded(end)) = &range
        && start >= end
    {
        return match from {
            // Nothing before: the first page is what comes back.
            Cursor::Before(_) => scan(tree, prefix, &Cursor::Start, limit, examine, keep),
            _ => Ok(Page {
                items: Vec::new(),
                next: None,
                prev: Some(Cursor::Start),
            }),
        };
    }
    let mut iter = tree.range::<Vec<u8>, _>(range);
    let mut step = || {
        if backward {
            iter.next_back()
        } else {
            iter.next()
        }
    };
    let mut items = Vec::new();
    let (mut first, mut last): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
    let mut examined = 0;
    while items.len() < limit && examined < examine {
        let Some(entry) = step() else { break };
        let (key, value) = entry?;
        examined += 1;
        if let Some(item) = keep(&key, &value)? {
            items.push(item);
        }
        if first.is_none() {
            first = Some(key.to_vec());
        }
        last = Some(key.to_vec());
    }
    let more = step().transpose()?.is_some();
    if !backward {
        let next = more.then(|| last.clone().map(Cursor::After)).flatten();
        let prev = match from {
            Cursor::Start => None,
            // Before the first key examined, or (nothing left) before where the cursor was.
            _ => Some(match (&first, from) {
                (Some(first), _) => Cursor::Before(first.clone()),
                (None, Cursor::After(key)) => Cursor::Before([key.as_slice(), &[0]].concat()),
                (None, _) => Cursor::Start,
            }),
        };
        return Ok(Page { items, next, prev });
    }
    items.reverse();
    // Backward, `first` is the largest key examined and `last` the smallest.
    let Some(largest) = first else {
        return scan(tree, prefix, &Cursor::Start, limit, examine, keep);
    };
    Ok(Page {
        items,
        next: Some(Cursor::After(largest)),
        prev: more.then(|| last.map(Cursor::Before)).flatten(),
    })
}

/// One prefix of a [`timeline`]: which records it holds, and what the caller already has that
/// belongs among them without being in the tree (open runs, held by their monitor record).
pub(super) struct Lane<T> {
    /// The tree's keys under it are `prefix ++ suffix`; suffixes of all lanes sort together.
    pub(super) prefix: Vec<u8>,
    /// `(suffix, item)` for records that are not in the tree.
    pub(super) held: Vec<(Vec<u8>, T)>,
}

impl<T> Lane<T> {
    pub(super) fn of(prefix: Vec<u8>) -> Lane<T> {
        Lane {
            prefix,
            held: Vec::new(),
        }
    }
}

/// A page of records newest first, by their key suffix (`time ++ id` for every timed record),
/// merged from one or more prefixes: the check-ins of all environments of a monitor, an issue's
/// events, every delivery. The cursor names a suffix, so one cursor walks all lanes together.
///
/// `Cursor::Before(s)` is the older page (suffixes below `s`), `Cursor::After(s)` the newer
/// page (above `s`); either comes back newest first, with `next` the older page and `prev` the
/// newer one. `keep` maps a record to an item or skips it; each lane examines at most `examine`
/// records, and the page ends where every lane has been examined, so a page may hold fewer than
/// `limit` items (even none) and still carry a cursor when a filter matches little.
pub(super) fn timeline<T>(
    tree: &sled::Tree,
    lanes: Vec<Lane<T>>,
    from: &Cursor,
    limit: usize,
    examine: usize,
    mut keep: impl FnMut(&[u8], &[u8]) -> Result<Option<T>, StoreError>,
) -> Result<Page<T>, StoreError> {
    let examine = examine.max(limit + 1);
    let newer = matches!(from, Cursor::After(_));
    // Walking older, a suffix further along is smaller; walking newer, larger.
    let further = |a: &[u8], b: &[u8]| if newer { a > b } else { a < b };
    let mut found: Vec<(Vec<u8>, T)> = Vec::new();
    // The furthest suffix every lane has been examined to (`None`: all lanes to their end).
    let mut frontier: Option<Vec<u8>> = None;
    for lane in lanes {
        let prefix = lane.prefix;
        let lower = match from {
            Cursor::After(s) => Bound::Excluded([prefix.as_slice(), s].concat()),
            _ => Bound::Included(prefix.clone()),
        };
        let upper = match from {
            Cursor::Before(s) => Bound::Excluded([prefix.as_slice(), s].concat()),
            _ => prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded),
        };
        let mut iter = tree.range::<Vec<u8>, _>((lower, upper));
        let (mut kept, mut examined, mut last) = (0, 0, None);
        let mut ended = true;
        loop {
            if kept > limit || examined == examine {
                ended = false;
                break;
            }
            let entry = if newer { iter.next() } else { iter.next_back() };
            let Some(entry) = entry else { break };
            let (key, value) = entry?;
            examined += 1;
            let suffix = key[prefix.len()..].to_vec();
            if let Some(item) = keep(&key, &value)? {
                kept += 1;
                found.push((suffix.clone(), item));
            }
            last = Some(suffix);
        }
        if !ended && let Some(last) = last {
            // This lane is known only up to `last`: the page must not reach past it.
            if frontier.as_ref().is_none_or(|f| further(f, &last)) {
                frontier = Some(last);
            }
        }
        found.extend(lane.held.into_iter().filter(|(s, _)| from.admits(s)));
    }
    Ok(newest_first(found, frontier, from, limit))
}

/// [`timeline`]'s page of records the caller holds in memory (a probe's ring of results):
/// `(suffix, item)` in any order.
pub(super) fn held_timeline<T>(held: Vec<(Vec<u8>, T)>, from: &Cursor, limit: usize) -> Page<T> {
    let found = held.into_iter().filter(|(s, _)| from.admits(s)).collect();
    newest_first(found, None, from, limit)
}

/// The page of `found` (every candidate inside the cursor) up to `frontier` (how far every
/// lane was read, `None` if to its end), as [`timeline`] describes it.
fn newest_first<T>(
    mut found: Vec<(Vec<u8>, T)>,
    frontier: Option<Vec<u8>>,
    from: &Cursor,
    limit: usize,
) -> Page<T> {
    let newer = matches!(from, Cursor::After(_));
    let further = |a: &[u8], b: &[u8]| if newer { a > b } else { a < b };
    if newer {
        found.sort_by(|a, b| a.0.cmp(&b.0));
    } else {
        found.sort_by(|a, b| b.0.cmp(&a.0));
    }
    if let Some(f) = &frontier {
        found.retain(|(s, _)| !further(s, f));
    }
    let more = found.len() > limit || frontier.is_some();
    found.truncate(limit);
    // Where the walk stopped: the last item, or (none kept) the frontier.
    let stop = found.last().map(|(s, _)| s.clone()).or(frontier);
    let start = found.first().map(|(s, _)| s.clone());
    let (next, prev) = match from {
        Cursor::Start => (more.then(|| stop.map(Cursor::Before)).flatten(), None),
        Cursor::Before(s) => (
            more.then(|| stop.map(Cursor::Before)).flatten(),
            Some(Cursor::After(start.unwrap_or_else(|| s.clone()))),
        ),
        Cursor::After(s) => {
            // Read oldest first: the newest page shows them the other way round.
            found.reverse();
            (
                // Nothing newer than `s`: the older page starts at `s` itself.
                Some(Cursor::Before(
                    start.unwrap_or_else(|| [s.as_slice(), &[0]].concat()),
                )),
                more.then(|| stop.map(Cursor::After)).flatten(),
            )
        }
    };
    Page {
        items: found.into_iter().map(|(_, item)| item).collect(),
        next,
        prev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_of(n: u32) -> (tempfile::TempDir, sled::Tree) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        for i in 0..n {
            tree.insert(format!("p/{i:04}").as_bytes(), &i.to_be_bytes())
                .unwrap();
        }
        tree.insert(b"q/0", &[0]).unwrap();
        (dir, tree)
    }

    fn read(tree: &sled::Tree, from: &Cursor, limit: usize) -> Page<u32> {
        scan(tree, b"p/", from, limit, limit * 2, |_, v| {
            Ok(Some(u32::from_be_bytes(v.try_into().unwrap())))
        })
        .unwrap()
    }

    #[test]
    fn forward_walk_sees_every_key_once_and_backward_returns_the_previous_page() {
        let (_dir, tree) = tree_of(25);
        let mut seen: Vec<u32> = Vec::new();
        let mut from = Cursor::Start;
        let mut pages = Vec::new();
        loop {
            let page = read(&tree, &from, 10);
            seen.extend(&page.items);
            pages.push(page.items.clone());
            match page.next {
                Some(next) => from = Cursor::parse(&next.encode()).unwrap(),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
        assert_eq!(pages.len(), 3);
        // From the third page, back to the second, then the first.
        let third = read(
            &tree,
            &Cursor::After(format!("p/{:04}", 19).into_bytes()),
            10,
        );
        let second = read(&tree, third.prev.as_ref().unwrap(), 10);
        assert_eq!(second.items, (10..20).collect::<Vec<_>>());
        let first = read(&tree, second.prev.as_ref().unwrap(), 10);
        assert_eq!(first.items, (0..10).collect::<Vec<_>>());
        assert!(first.prev.is_none());
    }

    #[test]
    fn a_filter_bounds_what_one_page_examines() {
        let (_dir, tree) = tree_of(100);
        let page = scan(&tree, b"p/", &Cursor::Start, 10, 30, |_, v| {
            Ok((u32::from_be_bytes(v.try_into().unwrap()) >= 90).then_some(()))
        })
        .unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.next, Some(Cursor::After(b"p/0029".to_vec())));
    }

    #[test]
    fn a_cursor_from_outside_the_prefix_stays_inside_it() {
        let (_dir, tree) = tree_of(5);
        let ahead = read(&tree, &Cursor::Before(b"r".to_vec()), 10);
        assert_eq!(ahead.items, (0..5).collect::<Vec<_>>());
        let behind = read(&tree, &Cursor::After(b"a".to_vec()), 10);
        assert_eq!(behind.items, (0..5).collect::<Vec<_>>());
        let past = read(&tree, &Cursor::After(b"r".to_vec()), 10);
        assert!(past.items.is_empty() && past.next.is_none());
    }

    #[test]
    fn garbage_cursors_are_refused() {
        assert!(Cursor::parse("x123").is_err());
        assert!(Cursor::parse("a!!").is_err());
        assert_eq!(Cursor::parse("").unwrap(), Cursor::Start);
    }

    /// Two lanes (`a/`, `b/`) of 8-byte big-endian "times", and records held outside the tree.
    fn lanes_tree() -> (tempfile::TempDir, sled::Tree) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        for t in (0u64..30).filter(|t| t % 3 != 2) {
            let lane = if t % 3 == 0 { "a/" } else { "b/" };
            tree.insert(
                [lane.as_bytes(), &t.to_be_bytes()].concat(),
                &t.to_be_bytes(),
            )
            .unwrap();
        }
        tree.insert(b"c/xxxxxxxx", &[0]).unwrap();
        (dir, tree)
    }

    fn read_lanes(tree: &sled::Tree, from: &Cursor, limit: usize) -> Page<u64> {
        let held: Vec<(Vec<u8>, u64)> = (0u64..30)
            .filter(|t| t % 3 == 2)
            .map(|t| (t.to_be_bytes().to_vec(), t))
            .collect();
        let lanes = vec![
            Lane {
                prefix: b"a/".to_vec(),
                held,
            },
            Lane::of(b"b/".to_vec()),
        ];
        timeline(tree, lanes, from, limit, limit, |_, v| {
            Ok(Some(u64::from_be_bytes(v.try_into().unwrap())))
        })
        .unwrap()
    }

    #[test]
    fn a_timeline_merges_lanes_and_held_records_newest_first_and_walks_back() {
        let (_dir, tree) = lanes_tree();
        let mut pages = Vec::new();
        let mut from = Cursor::Start;
        loop {
            let page = read_lanes(&tree, &from, 7);
            pages.push(page.clone());
            match page.next {
                Some(next) => from = Cursor::parse(&next.encode()).unwrap(),
                None => break,
            }
        }
        let seen: Vec<u64> = pages.iter().flat_map(|p| p.items.clone()).collect();
        assert_eq!(seen, (0..30).rev().collect::<Vec<_>>());
        assert_eq!(pages.len(), 5);
        assert!(pages[0].prev.is_none());
        // From the last page, newer pages lead back to the same pages, newest first each.
        let mut back = pages.last().unwrap().prev.clone();
        for expected in pages.iter().rev().skip(1) {
            let page = read_lanes(&tree, back.as_ref().expect("a newer page"), 7);
            assert_eq!(page.items, expected.items);
            back = page.prev;
        }
        assert!(back.is_none(), "no page newer than the first");
    }

    #[test]
    fn a_filtered_timeline_stops_where_every_lane_was_read() {
        let (_dir, tree) = lanes_tree();
        let lanes = vec![Lane::of(b"a/".to_vec()), Lane::of(b"b/".to_vec())];
        // Only 0 and 1 pass, far at the end; each lane examines at most 4 records per page.
        let page = timeline(&tree, lanes, &Cursor::Start, 2, 4, |_, v| {
            Ok((u64::from_be_bytes(v.try_into().unwrap()) < 2).then_some(()))
        })
        .unwrap();
        assert!(page.items.is_empty());
        // Lane `a/` read 27..=18, lane `b/` read 28..=19: the page ends at the nearer, 19.
        assert_eq!(
            page.next,
            Some(Cursor::Before(19u64.to_be_bytes().to_vec()))
        );
    }

    #[test]
    fn a_held_timeline_pages_what_is_in_memory() {
        let held: Vec<(Vec<u8>, u8)> = [5u8, 1, 4, 2, 3].iter().map(|&n| (vec![n], n)).collect();
        let first = held_timeline(held.clone(), &Cursor::Start, 2);
        assert_eq!(first.items, vec![5, 4]);
        let second = held_timeline(held.clone(), first.next.as_ref().unwrap(), 2);
        assert_eq!(second.items, vec![3, 2]);
        let third = held_timeline(held, second.next.as_ref().unwrap(), 2);
        assert_eq!(third.items, vec![1]);
        assert!(third.next.is_none());
    }
}
