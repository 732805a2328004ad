package middleware

// CleanPath exports cleanPath for tests.
var CleanPath = cleanPath
