package multicast

// ChooseFrom exposes chooseFrom to the tests.
var ChooseFrom = chooseFrom
