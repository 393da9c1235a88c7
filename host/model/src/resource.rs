//! The `/proc/iomem` resource tree: byte-granular, nested, with the kernel's rules for
//! where a new region may go (kernel/resource.c __request_region).

use super::journal::JMap;

/// One `struct resource`. `end` is inclusive, as the kernel keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub id: u64,
    pub start: u64,
    pub end: u64,
    pub name: String,
    /// IORESOURCE_BUSY: nothing may nest inside a busy region.
    pub busy: bool,
}

/// The tree, children of each parent kept sorted by start (id 0 is the root).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceTree {
    /// (parent id, start) -> resource.
    children: JMap<(u64, u64), Resource>,
    /// id -> (parent id, start).
    index: JMap<u64, (u64, u64)>,
    next_id: u64,
}

/// Why a region could not be requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub name: String,
    pub start: u64,
    pub end: u64,
}

impl ResourceTree {
    pub const ROOT: u64 = 0;

    /// The sibling under `parent` that overlaps `[start, end]`, if any.
    fn overlapping_child(&self, parent: u64, start: u64, end: u64) -> Option<&Resource> {
        if let Some((_, r)) = self.children.range((parent, 0)..=(parent, start)).next_back() {
            if r.end >= start {
                return Some(r);
            }
        }
        self.children.range((parent, start)..=(parent, end)).map(|(_, r)| r).next()
    }

    /// __request_region: place `[start, end]` under the deepest non-busy region that
    /// contains it; a busy overlap, or a partial overlap, is a conflict.
    pub fn request(&mut self, start: u64, end: u64, name: &str, busy: bool) -> Result<u64, Conflict> {
        self.request_under(Self::ROOT, start, end, name, busy)
    }

    /// Like [`Self::request`], starting the descent at `parent`.
    pub fn request_under(&mut self, mut parent: u64, start: u64, end: u64, name: &str, busy: bool) -> Result<u64, Conflict> {
        loop {
            match self.overlapping_child(parent, start, end).cloned() {
                None => break,
                Some(c) if !c.busy && c.start <= start && c.end >= end => parent = c.id,
                Some(c) => return Err(Conflict { name: c.name, start: c.start, end: c.end }),
            }
        }
        self.next_id += 1;
        let id = self.next_id;
        self.children.insert((parent, start), Resource { id, start, end, name: name.to_string(), busy });
        self.index.insert(id, (parent, start));
        Ok(id)
    }

    /// Insert `[start, end]` as a child of `parent` as it is, without the request rules:
    /// for rebuilding a captured /proc/iomem, where the kernel already placed everything.
    pub fn insert_raw(&mut self, parent: u64, start: u64, end: u64, name: &str, busy: bool) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.children.insert((parent, start), Resource { id, start, end, name: name.to_string(), busy });
        self.index.insert(id, (parent, start));
        id
    }

    /// The region `id` is nested in (`None` at the top).
    pub fn parent_of(&self, id: u64) -> Option<u64> {
        self.index.get(&id).map(|&(parent, _)| parent).filter(|&p| p != Self::ROOT)
    }

    /// Move region `id` (no children) to `[start, end]` under the same parent.
    fn reshape(&mut self, id: u64, start: u64, end: u64) {
        let Some(key) = self.index.get(&id).copied() else { return };
        let Some(mut r) = self.children.remove(&key) else { return };
        r.start = start;
        r.end = end;
        self.children.insert((key.0, start), r);
        self.index.insert(id, (key.0, start));
    }

    /// Move region `id`'s end up to `end` (adjust_resource), unless a sibling lies in the
    /// way or its parent ends first.
    pub fn extend_end(&mut self, id: u64, end: u64) -> Result<(), Conflict> {
        let Some(r) = self.get(id).cloned() else { return Ok(()) };
        let Some(&(parent, _)) = self.index.get(&id) else { return Ok(()) };
        if end <= r.end {
            return Ok(());
        }
        if let Some(c) = self.overlapping_child(parent, r.end + 1, end) {
            return Err(Conflict { name: c.name.clone(), start: c.start, end: c.end });
        }
        if let Some(p) = self.get(parent).filter(|p| p.end < end) {
            return Err(Conflict { name: p.name.clone(), start: p.start, end: p.end });
        }
        self.reshape(id, r.start, end);
        Ok(())
    }

    /// Merge region `id` with siblings of the same name that touch it (merge_system_ram_resource);
    /// returns the id of the merged region.
    pub fn merge_with_neighbours(&mut self, id: u64) -> u64 {
        let Some(r) = self.get(id).cloned() else { return id };
        let Some(&(parent, _)) = self.index.get(&id) else { return id };
        let siblings: Vec<Resource> = self.children.range((parent, 0)..=(parent, u64::MAX)).map(|(_, s)| s.clone()).collect();
        let before = siblings.iter().find(|s| s.name == r.name && s.busy == r.busy && s.end.checked_add(1) == Some(r.start)).cloned();
        let after = siblings.iter().find(|s| s.name == r.name && s.busy == r.busy && r.end.checked_add(1) == Some(s.start)).cloned();
        let (mut keep, mut start, mut end) = (id, r.start, r.end);
        if let Some(b) = before {
            self.release(keep);
            keep = b.id;
            start = b.start;
        }
        if let Some(a) = after {
            self.release(a.id);
            end = a.end;
        }
        self.reshape(keep, start, end);
        keep
    }

    /// Give back `[start, end]` of region `id` (release_mem_region_adjustable): the whole
    /// region, its head, its tail, or a middle part (the region splits in two).
    pub fn release_adjustable(&mut self, id: u64, start: u64, end: u64) {
        let Some(r) = self.get(id).cloned() else { return };
        let parent = self.index.get(&id).map_or(Self::ROOT, |&(p, _)| p);
        match (start <= r.start, end >= r.end) {
            (true, true) => self.release(id),
            (true, false) => self.reshape(id, end + 1, r.end),
            (false, true) => self.reshape(id, r.start, start - 1),
            (false, false) => {
                self.reshape(id, r.start, start - 1);
                self.insert_raw(parent, end + 1, r.end, &r.name, r.busy);
            }
        }
    }

    /// Release region `id` (and anything nested in it).
    pub fn release(&mut self, id: u64) {
        let kids: Vec<u64> = self.children.range((id, 0)..=(id, u64::MAX)).map(|(_, r)| r.id).collect();
        for kid in kids {
            self.release(kid);
        }
        if let Some(key) = self.index.remove(&id) {
            self.children.remove(&key);
        }
    }

    pub fn get(&self, id: u64) -> Option<&Resource> {
        self.index.get(&id).and_then(|key| self.children.get(key))
    }

    /// Rename region `id`.
    pub fn rename(&mut self, id: u64, name: &str) {
        if let Some(key) = self.index.get(&id).copied() {
            self.children.update(&key, |r| r.name = name.to_string());
        }
    }

    /// Every region, at any depth, overlapping `[start, end]`.
    pub fn overlapping(&self, start: u64, end: u64) -> Vec<&Resource> {
        self.walk().into_iter().map(|(_, r)| r).filter(|r| r.start <= end && r.end >= start).collect()
    }

    /// Whether any top-level region overlaps `[start, end]` (region_intersects on the root).
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.overlapping_child(Self::ROOT, start, end).is_some()
    }

    /// The top-level region overlapping `[start, end]` that starts highest.
    pub fn highest_overlapping(&self, start: u64, end: u64) -> Option<&Resource> {
        if let Some((_, r)) = self.children.range((Self::ROOT, start)..=(Self::ROOT, end)).next_back() {
            return Some(r);
        }
        self.overlapping_child(Self::ROOT, start, end)
    }

    /// The regions directly under the root (the first column of /proc/iomem), by start.
    pub fn top_level(&self) -> impl Iterator<Item = &Resource> + '_ {
        self.children.range((Self::ROOT, 0)..=(Self::ROOT, u64::MAX)).map(|(_, r)| r)
    }

    /// The name of the top-level region holding `addr`, if any.
    pub fn top_level_at(&self, addr: u64) -> Option<&str> {
        let (_, r) = self.children.range((Self::ROOT, 0)..=(Self::ROOT, addr)).next_back()?;
        (r.end >= addr).then_some(r.name.as_str())
    }

    /// Every region with its depth, in /proc/iomem order.
    pub fn walk(&self) -> Vec<(usize, &Resource)> {
        let mut out = Vec::new();
        self.walk_from(Self::ROOT, 0, &mut out);
        out
    }

    fn walk_from<'a>(&'a self, parent: u64, depth: usize, out: &mut Vec<(usize, &'a Resource)>) {
        for (_, r) in self.children.range((parent, 0)..=(parent, u64::MAX)) {
            out.push((depth, r));
            self.walk_from(r.id, depth + 1, out);
        }
    }

    /// Number of regions (for leak checks).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn begin(&mut self) {
        self.children.begin();
        self.index.begin();
    }

    pub fn commit(&mut self) {
        self.children.commit();
        self.index.commit();
    }

    pub fn rollback(&mut self) {
        self.children.rollback();
        self.index.rollback();
    }

    /// Same regions, ignoring id numbering and open journals.
    pub fn same_contents(&self, other: &Self) -> bool {
        let a: Vec<_> = self.walk().into_iter().map(|(d, r)| (d, r.start, r.end, r.name.clone(), r.busy)).collect();
        let b: Vec<_> = other.walk().into_iter().map(|(d, r)| (d, r.start, r.end, r.name.clone(), r.busy)).collect();
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_overlap_conflicts_and_nonbusy_parent_nests() {
        let mut t = ResourceTree::default();
        t.request(0, 0x3fff_ffff, "System RAM", true).unwrap();
        let c = t.request(0x3000_0000, 0x4fff_ffff, "System RAM", true).unwrap_err();
        assert_eq!(c.name, "System RAM");
        let dax = t.request(0x1_0000_0000, 0x1_3fff_ffff, "dax0.0", false).unwrap();
        let kmem = t.request(0x1_0000_0000, 0x1_3fff_ffff, "System RAM (kmem)", true).unwrap();
        let walk: Vec<_> = t.walk().iter().map(|(d, r)| (*d, r.name.clone())).collect();
        assert_eq!(walk[2], (1, "System RAM (kmem)".to_string()));
        // A region straddling the non-busy parent's end cannot nest: conflict.
        assert!(t.request(0x1_2000_0000, 0x1_5fff_ffff, "x", true).is_err());
        t.release(dax);
        assert!(t.get(kmem).is_none());
        assert_eq!(t.len(), 1);
    }
}
