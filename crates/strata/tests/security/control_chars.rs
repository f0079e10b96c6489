//! Issue 10, item 8. Its tests land with its fix.
