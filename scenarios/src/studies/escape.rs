//! E4 and E6: escape times.
