//! The simulator catches planted bugs (see `docs/TESTING.md`).

mod t01_checkers_catch_planted_bugs;
