//! Issue 10, item 3. Its tests land with its fix.
