//! Integration tests for viewsync; see tests/.
