// Package atomicfile writes files so that a reader sees either the old
// content or the complete new content, never a torn write.
package atomicfile
