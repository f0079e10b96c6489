//! Issue 10, item 10. Its tests land with its fix.
