//! Issue 10, item 7. Its tests land with its fix.
