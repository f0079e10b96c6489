//! Issue 10, item 9. Its tests land with its fix.
