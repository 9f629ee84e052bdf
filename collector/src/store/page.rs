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

use super::StoreError;

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
}
