//! Where an imported item is, for the errors that name it.

/// Where an item of a trajectory's list is, for errors (`FILE: history[3]`): formatted only when
/// one is reported, not for each of the millions of items an import reads.
pub struct At<'a> {
    pub shown: &'a str,
    pub list: &'static str,
    pub index: usize,
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}[{}]", self.shown, self.list, self.index)
    }
}
