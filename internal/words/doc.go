// Package words owns how ferry writes counts in English: "1 check
// passed", "2 checks passed", never "1 checks".
package words
